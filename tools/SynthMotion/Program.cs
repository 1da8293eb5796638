using System.Globalization;
using System.Text.Json;
using SynthMotion;

// SynthMotion: renders the benchmark's videos and encodes them with ffmpeg (docs/synthmotion.md).
//   dotnet run -c Release --project tools/SynthMotion -- --out data/synthmotion [--track all|motion-only|scene-and-motion]
//     [--seed 2026] [--train-per-class N] [--test-per-class N] [--jobs N]
// Layout: OUT/TRACK/{train,test}/CLASS/*.mp4|webm, OUT/TRACK/{train,test}.csv (path,label), OUT/TRACK/design.json.
// Files that already exist are kept, so an interrupted run continues where it stopped.
var options = Options.Parse(args);
if (options is null)
{
    return 2;
}

var settings = new RenderSettings();
foreach (var track in options.Tracks)
{
    string root = Path.Combine(options.Out, track.Name);
    int trainPerClass = options.TrainPerClass ?? track.TrainPerClass;
    int testPerClass = options.TestPerClass ?? track.TestPerClass;
    var jobs = Generator.Plan(track, settings, options.Seed, trainPerClass, testPerClass);
    Directory.CreateDirectory(root);
    File.WriteAllText(Path.Combine(root, "design.json"), JsonSerializer.Serialize(new
    {
        track = track.Name,
        seed = options.Seed,
        trainPerClass,
        testPerClass,
        classes = track.Classes.Select(c => new { c.Name, kind = c.Kind.ToString(), motion = c.Motion.ToString() }),
        settings,
    }, new JsonSerializerOptions { WriteIndented = true }));
    int done = 0;
    var clock = System.Diagnostics.Stopwatch.StartNew();
    await Parallel.ForEachAsync(jobs, new ParallelOptions { MaxDegreeOfParallelism = options.Jobs }, async (job, ct) =>
    {
        string path = Path.Combine(root, job.RelativePath);
        if (!File.Exists(path))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            await Generator.WriteAsync(job, settings, path, ct);
        }

        int n = Interlocked.Increment(ref done);
        if (n % 200 == 0 || n == jobs.Count)
        {
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{track.Name}: {n}/{jobs.Count} videos ({clock.Elapsed.TotalSeconds:F0} s)"));
        }
    });
    foreach (string split in new[] { "train", "test" })
    {
        var lines = jobs.Where(j => j.Split == split).Select(j => $"{j.RelativePath},{j.Class.Name}");
        File.WriteAllLines(Path.Combine(root, $"{split}.csv"), ["path,label", .. lines]);
    }
}

return 0;

internal sealed record Options(string Out, IReadOnlyList<Track> Tracks, int Seed, int? TrainPerClass, int? TestPerClass, int Jobs)
{
    public static Options? Parse(string[] args)
    {
        string? output = null;
        string track = "all";
        int seed = 2026, jobs = Environment.ProcessorCount;
        int? train = null, test = null;
        try
        {
            for (int i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                switch (args[i])
                {
                    case "--out": output = Next(); break;
                    case "--track": track = Next(); break;
                    case "--seed": seed = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--train-per-class": train = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--test-per-class": test = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--jobs": jobs = Math.Max(1, int.Parse(Next(), CultureInfo.InvariantCulture)); break;
                    default: throw new ArgumentException($"unknown option '{args[i]}'");
                }
            }

            if (output is null)
            {
                throw new ArgumentException("--out is required");
            }

            return new Options(output, track == "all" ? Track.All : [Track.Find(track)], seed, train, test, jobs);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
        {
            Console.Error.WriteLine($"synthmotion: {e.Message}");
            return null;
        }
    }
}
