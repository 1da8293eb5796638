using CvrlServe.Core.Video;
using Xunit.Abstractions;

namespace CvrlServe.Core.Tests.Video;

/// <summary>
/// The decode worker against the reference it replaces: every test video (the regular and irregular
/// fixtures, the committed samples, the real footage) is probed and decoded by a reader on the ffmpeg
/// command line and by one on the worker, and the two must agree exactly: the same media information,
/// the same bytes in every view, the same tail filling and fallbacks, or the same kind of error.
/// </summary>
[Collection(IsolatedTests.Name)]
public sealed class DecodeWorkerParityTests(ITestOutputHelper output)
{
    private static readonly string[] Extensions = [.. RealFootageTests.Extensions, "m4a", "nut"];

    /// <summary>The geometries the project uses: full frames, the small preset's crops, the three-crop evaluation.</summary>
    private static readonly FrameGeometry[] Geometries =
    [
        FrameGeometry.FullFrame,
        FrameGeometry.CenterCrop(40, 32),
        FrameGeometry.ThreeCrops(36, 32),
        new FrameGeometry(24),
    ];

    [Fact]
    public async Task RegularAndIrregularFixtures_WorkerEqualsCommandLine()
    {
        using var regular = new TestVideos();
        using var irregular = new IrregularVideos();
        long declined = await CompareAllAsync([.. Files(regular.Folder), .. Files(irregular.Folder)]);

        // Every fixture is within what the worker reproduces: none was handed to the command line (which
        // would compare the command line with itself).
        Assert.Equal(0, declined);
    }

    [Fact]
    public async Task SamplesAndRealFootage_WorkerEqualsCommandLine()
    {
        Assert.True(Directory.Exists(RealFootageTests.Folder),
            $"No real footage at '{RealFootageTests.Folder}'. Run tools/fetch-footage.sh before the tests.");
        string samples = Path.Combine(Repository.Root, "samples");
        await CompareAllAsync([.. Files(samples).Take(12), .. Files(RealFootageTests.Folder)]);
    }

    [Fact]
    public async Task AWorkerIsUsed_WhereTheTestsRun()
    {
        using var reader = new VideoReader(new VideoReaderOptions { DecodePath = DecodePath.Worker });
        string backend = await reader.CheckDecoderAsync();
        Assert.True(reader.UsesWorker, $"The decode worker is not in use: {backend}. Build it (make -C src/decode-worker; needs libavformat-dev libavcodec-dev libavfilter-dev libswscale-dev pkg-config).");
    }

    /// <summary>Compares every file both ways; returns the decodes the worker handed to the command line.</summary>
    private async Task<long> CompareAllAsync(IReadOnlyList<string> files)
    {
        Assert.NotEmpty(files);
        using var cli = new VideoReader(new VideoReaderOptions { DecodePath = DecodePath.Cli });
        using var worker = new VideoReader(new VideoReaderOptions { DecodePath = DecodePath.Worker });
        await worker.CheckDecoderAsync();
        Assert.True(worker.UsesWorker, $"The decode worker is not in use: {worker.DecodeBackend}");

        var mismatches = new List<string>();
        int decodes = 0, unstableDecodes = 0;
        foreach (string file in files)
        {
            string name = Path.GetFileName(file);
            var (cliMedia, cliError) = await Try(() => cli.GetMediaInfoAsync(file));
            var (workerMedia, workerError) = await Try(() => worker.GetMediaInfoAsync(file));
            if (!SameOutcome(cliError, workerError) || cliMedia != workerMedia)
            {
                mismatches.Add($"{name}: probe differs: cli {(object?)cliMedia ?? Describe(cliError)} / worker {(object?)workerMedia ?? Describe(workerError)}");
                continue;
            }

            if (cliMedia is not { HasVideo: true })
            {
                output.WriteLine($"{name}: both refused ({Describe(cliError) ?? "no video"})");
                continue;
            }

            var grid = cliMedia.Grid();
            var plans = new List<(string, SamplingPlan)>
            {
                ("evaluation 3×(8, stride 2)", SamplingPlan.Evaluation(grid, new ClipSpec(8, 2), 3)),
                ("every frame of the first 2 s", new SamplingPlan(grid, [new ClipPlan(Enumerable.Range(0, Math.Min(grid.Count, (int)(2 * grid.Rate) + 1)).ToArray())])),
                ("the last 3 frames", new SamplingPlan(grid, [new ClipPlan(Enumerable.Range(Math.Max(0, grid.Count - 3), Math.Min(3, grid.Count)).ToArray())])),
                ("training pair", SamplingPlan.PretrainingPair(grid, new ClipSpec(4, 2), IntervalDistribution.LinearDecreasing, new Random(name.Length))),
            };
            foreach (var (planName, plan) in plans)
            {
                var geometry = Geometries[decodes++ % Geometries.Length];
                var (cliVideo, cliDecodeError) = await Try(() => cli.DecodeAsync(cliMedia, plan, geometry));
                long declined = worker.WorkerDeclined;
                var (workerVideo, workerDecodeError) = await Try(() => worker.DecodeAsync(cliMedia, plan, geometry));
                if (worker.WorkerDeclined != declined)
                {
                    output.WriteLine($"{name}, {planName}: the worker handed this decode to the command line");
                }

                string? difference = Difference(cliVideo, cliDecodeError, workerVideo, workerDecodeError);
                if (difference is not null && cliVideo is not null && workerVideo is not null)
                {
                    // Some streams decode differently from one ffmpeg run to the next (frame threads
                    // concealing errors after a seek into a broken GOP): then only the outcome can agree.
                    var (again, againError) = await Try(() => cli.DecodeAsync(cliMedia, plan, geometry));
                    if (Difference(cliVideo, null, again, againError) is { } unstable)
                    {
                        output.WriteLine($"{name}, {planName}: the command line differs from itself ({unstable}); outcomes compared only");
                        unstableDecodes++;
                        difference = Difference(cliVideo, null, workerVideo, null, pixels: false);
                    }
                }

                if (difference is not null)
                {
                    mismatches.Add($"{name}, {planName}, {geometry}: {difference}");
                }
            }

            output.WriteLine($"{name}: {cliMedia.Codec} in {cliMedia.ContainerFormat}, {plans.Count} plans agree");
        }

        Assert.True(worker.UsesWorker, worker.DecodeBackend);
        output.WriteLine($"{files.Count} files, {decodes} decodes; the worker handed {worker.WorkerDeclined} to the command line; {unstableDecodes} differ between command-line runs");
        Assert.True(mismatches.Count == 0, string.Join('\n', mismatches));
        return worker.WorkerDeclined;
    }

    private static string? Difference(DecodedVideo? a, Exception? aError, DecodedVideo? b, Exception? bError, bool pixels = true)
    {
        if (!SameOutcome(aError, bError))
        {
            return $"cli {Describe(aError) ?? "decoded"} / worker {Describe(bError) ?? "decoded"}";
        }

        if (a is null || b is null)
        {
            return null;
        }

        if ((a.Stats.UsedFallback, a.Stats.FilledTailFrames, a.Stats.FramesDecoded) != (b.Stats.UsedFallback, b.Stats.FilledTailFrames, b.Stats.FramesDecoded))
        {
            return $"stats differ: cli {a.Stats} / worker {b.Stats}";
        }

        if (a.Views.Count != b.Views.Count)
        {
            return $"{a.Views.Count} views / {b.Views.Count} views";
        }

        for (int v = 0; v < a.Views.Count; v++)
        {
            var (x, y) = (a.Views[v], b.Views[v]);
            if ((x.Width, x.Height) != (y.Width, y.Height) || x.Rgb.Length != y.Rgb.Length || (pixels && !x.Rgb.AsSpan().SequenceEqual(y.Rgb)))
            {
                int at = x.Rgb.AsSpan().CommonPrefixLength(y.Rgb);
                return $"view {v} differs ({x.Width}×{x.Height} / {y.Width}×{y.Height}), first at byte {at} of {x.Rgb.Length}";
            }
        }

        return null;
    }

    private static bool SameOutcome(Exception? a, Exception? b) =>
        (a, b) switch
        {
            (null, null) => true,
            (CvrlException x, CvrlException y) => x.Kind == y.Kind && x.GetType() == y.GetType(),
            _ => false,
        };

    private static string? Describe(Exception? e) => e is null ? null : $"{e.GetType().Name}: {e.Message}";

    private static async Task<(T? Value, Exception? Error)> Try<T>(Func<Task<T>> run)
        where T : class
    {
        try
        {
            return (await run(), null);
        }
        catch (CvrlException e)
        {
            return (null, e);
        }
    }

    private static string[] Files(string folder) =>
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(f => Extensions.Contains(Path.GetExtension(f).TrimStart('.').ToLowerInvariant()))
            .Order(StringComparer.Ordinal)
            .ToArray();
}
