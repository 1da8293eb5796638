// Same-video retrieval on real footage: for each video, two clips that do not overlap in time (one centred
// in each half of its frame grid, centre crop, the model's clip, stride, frame rate and short side), each
// embedded and L2-normalized. Each clip queries every other clip of every video; a hit is the other clip of
// its own video ranked first by cosine. A representation that keeps what a video is about (not just what a
// moment looks like) should score far above chance (1/(2N−1)).
//
//   dotnet run -c Release --project tools/SameVideoRetrieval -- --model DIR [--model DIR2 ...]
//       [--videos DIR] [--exclude TEXT ...] [--json OUT.json] [--cpu]
//
// --videos defaults to the footage tools/fetch-footage.sh fills (its unpacked/ folder). Files Core refuses,
// and videos too short for two non-overlapping clips, are reported and left out. --exclude leaves out files
// whose path contains TEXT: near-duplicate videos (the same footage in several containers) put the same
// moment of another file in the gallery, which rightly beats the other half of the query's own file; every
// miss is printed with the clip it retrieved instead, so such pairs show.
using System.Globalization;
using System.Text.Json;
using CvrlServe.Core;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;
using SameVideoRetrieval;

string[] extensions = ["mp4", "avi", "mkv", "webm", "mov", "ogv", "ogg", "flv", "3gp", "asf", "wmv", "mpg", "mpeg", "ts", "m4v", "gif", "rmvb", "rm"];
var models = new List<string>();
string? videosFolder = null;
string? json = null;
var excluded = new List<string>();
bool cpu = false;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--model" when i + 1 < args.Length: models.Add(args[++i]); break;
        case "--videos" when i + 1 < args.Length: videosFolder = args[++i]; break;
        case "--json" when i + 1 < args.Length: json = args[++i]; break;
        case "--exclude" when i + 1 < args.Length: excluded.Add(args[++i]); break;
        case "--cpu": cpu = true; break;
        default:
            Console.Error.WriteLine($"Unknown or incomplete option '{args[i]}'. Usage: --model DIR [--model DIR2 ...] [--videos DIR] [--exclude TEXT ...] [--json OUT.json] [--cpu]");
            return 2;
    }
}

if (models.Count == 0)
{
    Console.Error.WriteLine("Name at least one --model DIR.");
    return 2;
}

videosFolder ??= DefaultFootage();
if (!Directory.Exists(videosFolder))
{
    Console.Error.WriteLine($"No videos at '{videosFolder}'. Run tools/fetch-footage.sh (or pass --videos DIR).");
    return 1;
}

string[] files = Directory.EnumerateFiles(videosFolder, "*", SearchOption.AllDirectories)
    .Where(f => extensions.Contains(Path.GetExtension(f).TrimStart('.').ToLowerInvariant()))
    .Where(f => !excluded.Any(e => f.Contains(e, StringComparison.Ordinal)))
    .Order(StringComparer.Ordinal)
    .ToArray();
Console.WriteLine($"{files.Length} video files under {videosFolder}{(excluded.Count > 0 ? $" (excluding paths containing {string.Join(", ", excluded)})" : "")}");
using var reader = new VideoReader();
var embedder = new VideoEmbedder(reader);
var reports = new List<object>();
foreach (string folder in models)
{
    await using var model = await EncoderModel.LoadAsync(folder, new EncoderSessionOptions
    {
        Provider = cpu ? ProviderPreference.Cpu : ProviderPreference.Cuda,
        WarmUp = false,
        InferenceTimeout = Timeout.InfiniteTimeSpan,
    });
    var manifest = model.Manifest;
    var clip = manifest.Clip();
    var geometry = manifest.Geometry() with { Crop = CropMode.Center };
    var pairs = new List<(float[], float[])>();
    var used = new List<string>();
    var tooShort = new List<string>();
    var refused = new List<(string File, string Reason)>();
    foreach (string file in files)
    {
        string name = Path.GetRelativePath(videosFolder, file);
        try
        {
            var media = await reader.GetMediaInfoAsync(file);
            var grid = media.Grid(manifest.View.TargetFps);
            int half = grid.Count / 2;
            if (clip.Span > half)
            {
                tooShort.Add($"{name} ({grid.Count} frames at {grid.Rate:G4} fps; two clips need {2 * clip.Span})");
                continue;
            }

            int first = (half - clip.Span) / 2;
            int second = half + (grid.Count - half - clip.Span) / 2;
            var plan = new SamplingPlan(grid, [new ClipPlan(ClipSampler.Indices(first, clip, grid.Count)), new ClipPlan(ClipSampler.Indices(second, clip, grid.Count))]);
            var views = await embedder.EmbedViewsAsync(model, media, plan, geometry);
            pairs.Add((views.Embeddings[0], views.Embeddings[1]));
            used.Add(name);
        }
        catch (CvrlException e)
        {
            refused.Add((name, $"{e.Kind}: {e.Message}"));
        }
    }

    Console.WriteLine();
    Console.WriteLine($"{model.Name} ({manifest.Architecture.Name}, {manifest.Output.Dimension}-d, model id {manifest.ModelId[..12]}; " +
        $"clips of {clip.Frames} frames, stride {clip.Stride}, {(manifest.View.TargetFps is { } fps ? $"{fps:G4} fps" : "own fps")}, short side {manifest.View.ShortSide}, centre crop {manifest.View.CropSize})");
    foreach (var (file, reason) in refused)
    {
        Console.WriteLine($"  refused: {file}: {reason}");
    }

    foreach (string entry in tooShort)
    {
        Console.WriteLine($"  too short: {entry}");
    }

    if (pairs.Count < 2)
    {
        Console.WriteLine($"  {pairs.Count} usable video(s): retrieval needs at least two.");
        reports.Add(new { model = model.Name, manifest.ModelId, videos = pairs.Count, tooShort = tooShort.Count, refused = refused.Select(r => new { r.File, r.Reason }) });
        continue;
    }

    var result = RetrievalMetrics.Evaluate(pairs);
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"  {result.Videos} videos used ({tooShort.Count} too short, {refused.Count} refused): top-1 {result.Top1:P1} (chance {result.ChanceTop1:P1}), MRR {result.MeanReciprocalRank:F3} (chance {result.ChanceMeanReciprocalRank:F3})"));
    string Clip(int index) => $"{used[index / 2]} ({(index % 2 == 0 ? "first" : "second")} half)";
    var misses = Enumerable.Range(0, 2 * result.Videos).Where(q => result.Nearest[q] != (q ^ 1)).Select(q => $"{Clip(q)} -> {Clip(result.Nearest[q])}").ToArray();
    foreach (string miss in misses)
    {
        Console.WriteLine($"  miss: {miss}");
    }

    reports.Add(new
    {
        model = model.Name,
        manifest.ModelId,
        videos = result.Videos,
        result.Top1,
        result.MeanReciprocalRank,
        result.ChanceTop1,
        result.ChanceMeanReciprocalRank,
        used,
        misses,
        tooShort = tooShort.Count,
        refused = refused.Select(r => new { r.File, r.Reason }),
    });
}

if (json is not null)
{
    File.WriteAllText(json, JsonSerializer.Serialize(new { videosFolder, reports }, new JsonSerializerOptions(JsonSerializerDefaults.Web) { WriteIndented = true }));
    Console.WriteLine($"Saved {json}");
}

return 0;

// As tools/fetch-footage.sh: $CVRL_FOOTAGE, else ${XDG_CACHE_HOME:-$HOME/.cache}/cvrl/footage; the videos lie under unpacked/.
static string DefaultFootage()
{
    string root = Environment.GetEnvironmentVariable("CVRL_FOOTAGE") is { Length: > 0 } footage
        ? footage
        : Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } cache
            ? cache
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "cvrl", "footage");
    return Path.Combine(root, "unpacked");
}
