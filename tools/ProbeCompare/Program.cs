// Trains the same linear probe on the same features with ML.NET (LbfgsMaximumEntropy, L1 = 0) and with
// scikit-learn's multinomial LogisticRegression (lbfgs), then compares test accuracy, agreement of the
// predicted probabilities, and training time. Features: a small random-init R3D-18 on generated videos of
// six classes that differ in motion and in overlapping colour families, with per-video noise, so accuracy
// is neither trivial nor at chance. The L2 ↔ C mapping is checked both ways: C = 1/λ (ML.NET sums the per-example losses)
// and C = 1/(nλ) (if it averaged them); the one whose probabilities match is the mapping.
//
//   apt-get install -y python3-sklearn libopenblas0-pthread
//   dotnet run -c Release --project tools/ProbeCompare [-- --l2 0.1]
using System.Diagnostics;
using System.Globalization;
using CvrlServe.Core.Datasets;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Probes;
using CvrlServe.Core.Video;
using CvrlServe.Training.Export;
using CvrlServe.Training.Modules;

double l2 = args is ["--l2", var v] ? double.Parse(v, CultureInfo.InvariantCulture) : 0.1;
string work = Path.Combine(Path.GetTempPath(), "cvrl-probe-compare");
string data = Path.Combine(work, "videos");
string[] classes = ["left", "right", "up", "down", "pulse", "static"];
for (int c = 0; c < classes.Length; c++)
{
    for (int i = 0; i < 10; i++)
    {
        string path = Path.Combine(data, classes[c], $"{i}.mp4");
        if (File.Exists(path))
        {
            continue;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var r = new Random(c * 100 + i);
        // Each class has its own colour family, jittered per video so that families overlap.
        int[] family = [(c * 53) % 160 + 40, (c * 97) % 160 + 40, (c * 29) % 160 + 40];
        string colour = "0x" + string.Concat(family.Select(f => Math.Clamp(f + r.Next(-70, 71), 0, 255).ToString("X2", CultureInfo.InvariantCulture)));
        int speed = 10 + r.Next(30);
        string motion = classes[c] switch
        {
            "left" => $"x='64-mod(t*{speed},64)':y={r.Next(30)}",
            "right" => $"x='mod(t*{speed},64)':y={r.Next(30)}",
            "up" => $"x={r.Next(48)}:y='48-mod(t*{speed},48)'",
            "down" => $"x={r.Next(48)}:y='mod(t*{speed},48)'",
            _ => $"x={r.Next(48)}:y={r.Next(30)}",
        };
        string pulse = classes[c] == "pulse" ? $",hue=b='sin(t*{3 + r.Next(4)})'" : "";
        Run("ffmpeg", $"-nostdin -v error -y -f lavfi -i \"color=c={colour}:s=64x48:r=15,drawbox={motion}:w=14:h=14:color=white:t=fill{pulse},noise=alls={r.Next(5, 20)}:allf=t\" -t 3 -c:v libx264 -preset ultrafast -pix_fmt yuv420p \"{path}\"");
    }
}

string modelFolder = Path.Combine(work, "model");
TorchSharp.torch.manual_seed(0);
using (var encoder = new R3dEncoder(R3dArchitecture.R3d18, 0.25))
{
    EncoderExport.Write(modelFolder, encoder, EncoderExport.DefaultView with { Frames = 8, ShortSide = 48, CropSize = 48, Clips = 2 }, EncoderExport.CvrlValues, new Provenance("random-init"), null);
}

var dataset = LabelledVideos.Load(data);
await using var model = await EncoderModel.LoadAsync(modelFolder, new EncoderSessionOptions { Provider = ProviderPreference.Cpu });
using var reader = new VideoReader();
var features = new ProbeFeatures(new VideoEmbedder(reader), Path.Combine(work, "features"));
var train = new List<(float[] Features, string Label)>();
var test = new List<(float[] Features, string Label)>();
foreach (var group in dataset.Videos.GroupBy(v => v.Label))
{
    int index = 0;
    foreach (var video in group)
    {
        var target = index++ < 7 ? train : test;
        foreach (var f in await features.TrainingAsync(model, video.Path, new ProbeFeatureOptions { ClipsPerVideo = 3, Augment = ProbeAugment.None }))
        {
            target.Add((f, video.Label));
        }
    }
}

WriteCsv(Path.Combine(work, "train.csv"), train);
WriteCsv(Path.Combine(work, "test.csv"), test);
LinearProbe.Train(train, ProbeTrainer.Lbfgs, l2, standardize: false); // warm-up: JIT and ML.NET's first-use costs are not the fit
var clock = Stopwatch.StartNew();
// Unstandardized: the peer fits sklearn's LogisticRegression on the features as they are.
var probe = LinearProbe.Train(train, ProbeTrainer.Lbfgs, l2, standardize: false);
double mlnetSeconds = clock.Elapsed.TotalSeconds;
var predictions = test.Select(t => probe.Predict(t.Features)).ToArray();
double mlnetAccuracy = test.Select((t, i) => probe.Classes[Array.IndexOf(predictions[i], predictions[i].Max())] == t.Label ? 1.0 : 0.0).Average();
using (var writer = new StreamWriter(Path.Combine(work, "mlnet_probabilities.csv")))
{
    foreach (var p in predictions)
    {
        writer.WriteLine(string.Join(',', p.Select(x => x.ToString("R", CultureInfo.InvariantCulture))));
    }
}

Console.WriteLine($"{train.Count} training clips / {test.Count} test clips, {train[0].Features.Length}-d features, {classes.Length} classes (chance {1.0 / classes.Length:P0})");
Console.WriteLine($"ML.NET LbfgsMaximumEntropy (L1 0, L2 {l2}): test top-1 {mlnetAccuracy:P1}, train {mlnetSeconds:F3} s");
var peer = Process.Start(new ProcessStartInfo("/usr/bin/python3",
    [Path.Combine(AppContext.BaseDirectory, "peers", "probe_sklearn.py"), work, l2.ToString("R", CultureInfo.InvariantCulture), string.Join(',', probe.Classes)])
{ RedirectStandardOutput = true, UseShellExecute = false })!;
string report = peer.StandardOutput.ReadToEnd();
peer.WaitForExit();
Console.Write(report);
foreach (string line in report.Split('\n').Where(l => l.StartsWith("time ", StringComparison.Ordinal)))
{
    double seconds = double.Parse(line.Split(' ')[2], CultureInfo.InvariantCulture);
    Console.WriteLine($"ML.NET / scikit-learn training time ({line.Split(' ')[1]}) = {mlnetSeconds / seconds:F2}");
}

return peer.ExitCode;

static void WriteCsv(string path, List<(float[] Features, string Label)> rows)
{
    using var writer = new StreamWriter(path);
    foreach (var (f, label) in rows)
    {
        writer.WriteLine($"{label},{string.Join(',', LinearProbe.Normalized(f).Select(x => x.ToString("R", CultureInfo.InvariantCulture)))}");
    }
}

static void Run(string file, string arguments)
{
    using var process = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardError = true, UseShellExecute = false })!;
    string stderr = process.StandardError.ReadToEnd();
    process.WaitForExit();
    if (process.ExitCode != 0)
    {
        throw new InvalidOperationException($"{file} failed: {stderr}");
    }
}
