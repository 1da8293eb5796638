// One CVRL pretraining step (forward through R3D + projection head, contrastive loss, backward, SGD
// with momentum) timed in TorchSharp, then the same step in Debian's PyTorch 1.13 (peers/train_step_peer.py,
// a separate process: the two libraries distort each other in one process). Same architecture (the
// parameter counts are printed side by side), batch, clip size and thread count; random inputs, so
// only the step is timed. Prints medians, clips/s and the ratio.
//
//   dotnet run -c Release --project tools/TrainStepBench [-- --arch r3d18 --width 0.5 --batch 4 --frames 8 --size 64 --steps 6]
using System.Diagnostics;
using System.Globalization;
using CvrlServe.Training.Config;
using CvrlServe.Training.Losses;
using CvrlServe.Training.Modules;
using CvrlServe.Training.Trainers;
using static TorchSharp.torch;

var options = new Dictionary<string, string> { ["--arch"] = "r3d18", ["--width"] = "0.5", ["--batch"] = "4", ["--frames"] = "8", ["--size"] = "64", ["--steps"] = "6", ["--threads"] = "2" };
for (int i = 0; i + 1 < args.Length; i += 2)
{
    options[args[i]] = args[i + 1];
}

string arch = options["--arch"];
double width = double.Parse(options["--width"], CultureInfo.InvariantCulture);
int batch = int.Parse(options["--batch"], CultureInfo.InvariantCulture);
int frames = int.Parse(options["--frames"], CultureInfo.InvariantCulture);
int size = int.Parse(options["--size"], CultureInfo.InvariantCulture);
int steps = int.Parse(options["--steps"], CultureInfo.InvariantCulture);
int threads = int.Parse(options["--threads"], CultureInfo.InvariantCulture);
set_num_threads(threads);
random.manual_seed(0);

var encoder = new R3dEncoder(R3dArchitecture.Parse(arch), width);
using var model = new ContrastiveModel(encoder, new ProjectionHead(encoder.EmbeddingSize));
using var updater = new ParameterUpdater(model.parameters(), new OptimizerSection(LearningRate: 0.1, WeightDecay: 1e-6));
long parameters = model.parameters().Sum(p => p.numel());
model.train();
var times = new List<double>();
for (int step = 0; step < steps + 2; step++)
{
    var clock = Stopwatch.StartNew();
    using (var scope = NewDisposeScope())
    {
        var clips = rand([2 * batch, 3, frames, size, size]);
        var result = ContrastiveLoss.Compute(model.forward(clips));
        updater.ZeroGrad();
        result.Loss.backward();
        updater.Step(0.1);
    }

    if (step >= 2)
    {
        times.Add(clock.Elapsed.TotalSeconds);
    }
}

double ours = times.Order().ElementAt(times.Count / 2);
Console.WriteLine($"Step: {arch} x{width}, {2 * batch} clips of {frames}x{size}x{size}, {threads} threads, {steps} timed steps after 2 warm-up");
Console.WriteLine($"TorchSharp 0.107 (libtorch 2.10): {parameters} parameters, median {ours:F3} s/step, {2 * batch / ours:F1} clips/s");

string peer = Path.Combine(AppContext.BaseDirectory, "peers", "train_step_peer.py");
var start = new ProcessStartInfo("/usr/bin/python3", $"\"{peer}\" {arch} {width.ToString(CultureInfo.InvariantCulture)} {batch} {frames} {size} {steps} {threads}")
{
    RedirectStandardOutput = true,
    RedirectStandardError = true,
    UseShellExecute = false,
};
try
{
    using var process = Process.Start(start)!;
    string stdout = process.StandardOutput.ReadToEnd();
    string stderr = process.StandardError.ReadToEnd();
    process.WaitForExit();
    if (process.ExitCode != 0)
    {
        Console.WriteLine($"PyTorch peer failed: {stderr.Trim()}");
        return 1;
    }

    var fields = stdout.Trim().Split(' ');
    long peerParameters = long.Parse(fields[0], CultureInfo.InvariantCulture);
    double theirs = double.Parse(fields[1], CultureInfo.InvariantCulture);
    Console.WriteLine($"PyTorch {fields[2]} (Debian, BLAS: {fields[3]}): {peerParameters} parameters, median {theirs:F3} s/step, {2 * batch / theirs:F1} clips/s");
    Console.WriteLine(peerParameters == parameters ? "Same parameter count: same network." : "PARAMETER COUNTS DIFFER: not the same network.");
    Console.WriteLine($"TorchSharp / PyTorch step time = {ours / theirs:F2} (below 1: TorchSharp faster)");
    return peerParameters == parameters ? 0 : 1;
}
catch (System.ComponentModel.Win32Exception)
{
    Console.WriteLine("No /usr/bin/python3: install Debian's python3-torch (and libopenblas0-pthread) for the peer.");
    return 1;
}
