// Encoder forward, same architecture and random weights, three ways, each in its own process (ONNX
// Runtime and TorchSharp distort each other in one process): our ONNX Runtime path (EncoderSession,
// CPU provider), TorchSharp eager (eval, no_grad), and Debian's PyTorch 1.13 (peers/encoder_peer.py).
// R3D-18 and R3D-50 at width 1, inputs [1,3,16,112,112] and [8,3,16,112,112], 2 threads each.
// Prints medians, ratios, and achieved GFLOP/s against this CPU's peak.
//
//   dotnet run -c Release --project tools/EncoderBench [-- --reps 5 --threads 2]
using System.Diagnostics;
using System.Globalization;
using CvrlServe.Core.Inference;
using CvrlServe.Training.Export;
using CvrlServe.Training.Modules;
using static TorchSharp.torch;

var options = new Dictionary<string, string> { ["--reps"] = "5", ["--threads"] = "2", ["--frames"] = "16", ["--size"] = "112" };
for (int i = 0; i + 1 < args.Length; i += 2)
{
    options[args[i]] = args[i + 1];
}

int reps = int.Parse(options["--reps"], CultureInfo.InvariantCulture);
int threads = int.Parse(options["--threads"], CultureInfo.InvariantCulture);
int frames = int.Parse(options["--frames"], CultureInfo.InvariantCulture);
int size = int.Parse(options["--size"], CultureInfo.InvariantCulture);

if (options.TryGetValue("--mode", out string? mode))
{
    Console.WriteLine(Child(mode, options["--arch"], int.Parse(options["--n"], CultureInfo.InvariantCulture)).ToString("R", CultureInfo.InvariantCulture));
    return 0;
}

string work = Path.Combine(Path.GetTempPath(), "cvrl-encoder-bench");
Directory.CreateDirectory(work);
double sgemm = double.Parse(Spawn(["--mode", "sgemm", "--arch", "-", "--n", "0"]), CultureInfo.InvariantCulture);
double mhz = double.Parse(File.ReadLines("/proc/cpuinfo").First(l => l.StartsWith("cpu MHz", StringComparison.Ordinal)).Split(':')[1], CultureInfo.InvariantCulture);
double theoretical = mhz / 1000 * 32 * threads;
Console.WriteLine($"CPU peak (fp32): theoretical {theoretical:F0} GFLOP/s = {mhz:F0} MHz x 32 FLOP/cycle (two 256-bit FMA pipes) x {threads} cores; measured SGEMM 2048^3 in TorchSharp: {sgemm:F0} GFLOP/s");
Console.WriteLine();
Console.WriteLine($"{"model",-8} {"input",-20} {"ORT s",8} {"TorchSharp s",13} {"PyTorch s",10} {"ORT/TS",7} {"ORT/PT",7} {"ORT GFLOP/s",12} {"% SGEMM",8}");
foreach (string arch in new[] { "r3d18", "r3d50" })
{
    string folder = Path.Combine(work, arch);
    manual_seed(0);
    long flopsPerClip;
    using (var encoder = new R3dEncoder(R3dArchitecture.Parse(arch), 1.0))
    {
        var view = EncoderExport.DefaultView with { Frames = frames, ShortSide = size, CropSize = size };
        flopsPerClip = EncoderExport.Write(folder, encoder, view, EncoderExport.CvrlValues, new Provenance("random-init"), null).Architecture.FlopsPerClip;
    }

    foreach (int n in new[] { 1, 8 })
    {
        double ort = double.Parse(Spawn(["--mode", "ort", "--arch", arch, "--n", $"{n}"]), CultureInfo.InvariantCulture);
        double ts = double.Parse(Spawn(["--mode", "torchsharp", "--arch", arch, "--n", $"{n}"]), CultureInfo.InvariantCulture);
        double pt = Peer(arch, n);
        double gflops = flopsPerClip * n / ort / 1e9;
        Console.WriteLine($"{arch,-8} {$"[{n},3,{frames},{size},{size}]",-20} {ort,8:F3} {ts,13:F3} {pt,10:F3} {ort / ts,7:F2} {ort / pt,7:F2} {gflops,12:F1} {gflops / sgemm,8:P0}");
    }
}

return 0;

double Child(string what, string arch, int n)
{
    set_num_threads(threads);
    string folder = Path.Combine(Path.GetTempPath(), "cvrl-encoder-bench", arch);
    int clip = 3 * frames * size * size;
    var times = new List<double>();
    switch (what)
    {
        case "sgemm":
            using (var a = rand([2048, 2048]))
            using (var b = rand([2048, 2048]))
            {
                for (int r = 0; r < 6; r++)
                {
                    var clock = Stopwatch.StartNew();
                    using var c = a.matmul(b);
                    times.Add(2.0 * 2048 * 2048 * 2048 / clock.Elapsed.TotalSeconds / 1e9);
                }
            }

            return times.Max();
        case "ort":
            using (var session = EncoderSession.Load(folder, new EncoderSessionOptions { Provider = ProviderPreference.Cpu, IntraOpThreads = threads }))
            {
                var random = new Random(1);
                var input = new float[clip * n];
                for (int i = 0; i < input.Length; i++)
                {
                    input[i] = random.NextSingle();
                }

                var output = new float[n * session.Dimension];
                for (int r = 0; r <= reps; r++)
                {
                    var clock = Stopwatch.StartNew();
                    session.Run(input, n, [3, frames, size, size], output);
                    if (r > 0)
                    {
                        times.Add(clock.Elapsed.TotalSeconds);
                    }
                }
            }

            break;
        default:
            manual_seed(0);
            using (var encoder = new R3dEncoder(R3dArchitecture.Parse(arch), 1.0))
            using (var noGrad = no_grad())
            using (var input = rand([n, 3, frames, size, size]))
            {
                encoder.eval();
                for (int r = 0; r <= reps; r++)
                {
                    var clock = Stopwatch.StartNew();
                    using var y = encoder.forward(input);
                    if (r > 0)
                    {
                        times.Add(clock.Elapsed.TotalSeconds);
                    }
                }
            }

            break;
    }

    return times.Order().ElementAt(times.Count / 2);
}

string Spawn(string[] childArgs)
{
    var start = new ProcessStartInfo(Environment.ProcessPath!, [.. childArgs, "--reps", $"{reps}", "--threads", $"{threads}", "--frames", $"{frames}", "--size", $"{size}"])
    {
        RedirectStandardOutput = true,
        UseShellExecute = false,
    };
    // The glibc malloc thresholds from the engineering notes, for TorchSharp inference.
    start.Environment["MALLOC_TRIM_THRESHOLD_"] = int.MaxValue.ToString(CultureInfo.InvariantCulture);
    start.Environment["MALLOC_MMAP_THRESHOLD_"] = int.MaxValue.ToString(CultureInfo.InvariantCulture);
    using var process = Process.Start(start)!;
    string text = process.StandardOutput.ReadToEnd().Trim();
    process.WaitForExit();
    return text.Split('\n')[^1];
}

double Peer(string arch, int n)
{
    var start = new ProcessStartInfo("/usr/bin/python3", [Path.Combine(AppContext.BaseDirectory, "peers", "encoder_peer.py"), arch, $"{n}", $"{frames}", $"{size}", $"{reps}", $"{threads}"])
    {
        RedirectStandardOutput = true,
        RedirectStandardError = true,
        UseShellExecute = false,
    };
    try
    {
        using var process = Process.Start(start)!;
        string text = process.StandardOutput.ReadToEnd().Trim();
        process.WaitForExit();
        return process.ExitCode == 0 ? double.Parse(text, CultureInfo.InvariantCulture) : double.NaN;
    }
    catch (System.ComponentModel.Win32Exception)
    {
        return double.NaN;
    }
}
