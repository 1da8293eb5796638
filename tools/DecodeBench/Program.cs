// Decoding benchmark for issue 2: K = 10 clips × 16 frames (stride 2) at short side 128 from a 60 s
// 720p h264 video with a keyframe every 2 s, three ways side by side in one run:
//   ours      VideoReader.DecodeAsync: every clip in one ffmpeg process (one seeking input per clip);
//   per-clip  the same reader asked for one clip at a time: one ffmpeg process per clip;
//   bash      our exact ffmpeg command line run from bash, frames through stdout to /dev/null.
// Rounds interleave the three so machine noise hits all alike; medians and ratios are printed.
//
//   dotnet run -c Release --project tools/DecodeBench [-- --rounds 7]
using System.Diagnostics;
using System.Globalization;
using CvrlServe.Core.Video;

int rounds = args is ["--rounds", var n] ? int.Parse(n, CultureInfo.InvariantCulture) : 7;
string folder = Path.Combine(AppContext.BaseDirectory, "bench-data");
Directory.CreateDirectory(folder);
string video = Path.Combine(folder, "720p-60s-gop2s.mp4");
if (!File.Exists(video))
{
    Console.WriteLine("Encoding the 60 s 720p test video (once)...");
    Run("ffmpeg", $"-nostdin -v error -y -f lavfi -i testsrc2=s=1280x720:r=30 -t 60 -c:v libx264 -preset veryfast -g 60 -keyint_min 60 -pix_fmt yuv420p \"{video}.tmp.mp4\"");
    File.Move(video + ".tmp.mp4", video);
}

using var reader = new VideoReader();
var media = await reader.GetMediaInfoAsync(video);
var clip = new ClipSpec(16, 2);
var geometry = new FrameGeometry(128);
var plan = SamplingPlan.Evaluation(media.Grid(), clip, 10);
var command = DecodeCommand.Build(media, plan, geometry, reader.Options.AllowedFormats, seek: true, reader.Options.SeekGapSeconds);
string shell = command.ToShellCommand("ffmpeg") + " > /dev/null";
Console.WriteLine($"Video: {media.Width}x{media.Height}, {media.FrameRate} fps, {media.FrameCount} frames; plan: 10 clips x 16 frames, stride 2 -> {command.Width}x{command.Height}");
Console.WriteLine($"bash runs ({command.Inputs.Count} inputs): {shell}");

// Same frames both ways?
var ours = await reader.DecodeAsync(media, plan, geometry);
var perClipViews = new List<DecodedClip>();
foreach (var one in plan.Clips)
{
    perClipViews.AddRange((await reader.DecodeAsync(media, new SamplingPlan(plan.Grid, [one]), geometry)).Views);
}

bool identical = ours.Views.Zip(perClipViews).All(p => p.First.Rgb.AsSpan().SequenceEqual(p.Second.Rgb));
Console.WriteLine($"Frames identical between ours and per-clip: {identical}; processes per video: ours {ours.Stats.Processes}, per-clip {plan.Clips.Count}");

var times = new Dictionary<string, List<double>> { ["ours"] = [], ["per-clip"] = [], ["bash"] = [] };
for (int r = 0; r < rounds; r++)
{
    times["ours"].Add(await Time(async () => await reader.DecodeAsync(media, plan, geometry)));
    times["per-clip"].Add(await Time(async () =>
    {
        foreach (var one in plan.Clips)
        {
            await reader.DecodeAsync(media, new SamplingPlan(plan.Grid, [one]), geometry);
        }
    }));
    times["bash"].Add(await Time(() => ToolProcess.RunAsync("bash", ["-c", shell], null, TimeSpan.FromMinutes(5), "bash")));
}

double Median(List<double> xs) => xs.Order().ElementAt(xs.Count / 2);
Console.WriteLine();
Console.WriteLine($"{"way",-10} {"median s",10} {"min s",8} {"max s",8}   ({rounds} interleaved rounds)");
foreach (var (name, xs) in times)
{
    Console.WriteLine($"{name,-10} {Median(xs),10:F3} {xs.Min(),8:F3} {xs.Max(),8:F3}");
}

Console.WriteLine();
Console.WriteLine($"ours / bash (same ffmpeg command)  = {Median(times["ours"]) / Median(times["bash"]):F3}  (target <= 1.15)");
Console.WriteLine($"ours / per-clip processes          = {Median(times["ours"]) / Median(times["per-clip"]):F3}  (target < 1)");
return identical ? 0 : 1;

static async Task<double> Time(Func<Task> action)
{
    var clock = Stopwatch.StartNew();
    await action();
    return clock.Elapsed.TotalSeconds;
}

static void Run(string file, string arguments)
{
    using var process = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardError = true, UseShellExecute = false })!;
    string stderr = process.StandardError.ReadToEnd();
    process.WaitForExit();
    if (process.ExitCode != 0)
    {
        throw new InvalidOperationException($"{file} failed ({process.ExitCode}): {stderr}");
    }
}
