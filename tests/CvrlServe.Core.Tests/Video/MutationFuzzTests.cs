using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using CvrlServe.Core.Video;
using Xunit.Abstractions;

namespace CvrlServe.Core.Tests.Video;

/// <summary>
/// A seeded, bounded mutation fuzz of probe, decode and embedding: small MP4, MKV and AVI files with
/// bytes flipped in their headers, size and count fields overwritten with extreme numbers, cut short,
/// or with chunks duplicated. Every outcome is success or a <see cref="CvrlException"/>, within its
/// timeout, and nothing (process or temporary file) outlives it. A failing case prints its seed and
/// mutation; <see cref="Mutate"/> with that seed rebuilds it.
/// </summary>
[Collection(IsolatedTests.Name)]
public sealed class MutationFuzzTests(ITestOutputHelper output) : IDisposable
{
    /// <summary>Mutant i of source s is built by <c>new Random(BaseSeed + 1000 * s + i)</c>.</summary>
    public const int BaseSeed = 20261202;
    public const int MutantsPerSource = 12; // 36 mutants: 1.1–1.3 s each on 2 cores at load 14–15; each stage has its own deadline (RunAsync)
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromSeconds(10);
    private static readonly uint[] Extremes = [0xFFFFFFF0, 0x7FFFFFFF, 0, 1, 0x80000000, 0xFFFFFFFF];

    private readonly string _folder = Directory.CreateTempSubdirectory("cvrl-fuzz-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task Mutants_SuccessOrTypedErrorWithinTheTimeout_NothingLeftBehind()
    {
        string[] sources = MakeSources();
        await using var encoder = await TinyEncoder.LoadAsync();
        using var reader = new VideoReader();
        var tempBefore = TempEntries();
        var failures = new List<string>();
        var outcomes = new Dictionary<string, int>();
        var total = Stopwatch.StartNew();

        for (int s = 0; s < sources.Length; s++)
        {
            byte[] original = File.ReadAllBytes(sources[s]);
            for (int i = 0; i < MutantsPerSource; i++)
            {
                int seed = BaseSeed + 1000 * s + i;
                var (bytes, steps) = Mutate(original, Path.GetExtension(sources[s]), seed);
                string path = Path.Combine(_folder, $"mutant-{seed}{Path.GetExtension(sources[s])}");
                await File.WriteAllBytesAsync(path, bytes);
                var clock = Stopwatch.StartNew();
                var (outcome, failure) = await RunAsync(reader, encoder, path);
                string label = $"seed {seed} ({Path.GetFileName(sources[s])}: {steps})";
                output.WriteLine($"{label}: {outcome} [{clock.ElapsedMilliseconds} ms]");
                outcomes[outcome.Split(':')[0]] = outcomes.GetValueOrDefault(outcome.Split(':')[0]) + 1;
                if (failure is not null)
                {
                    failures.Add($"{label}: {failure}");
                }

                File.Delete(path);
            }
        }

        var elapsed = total.Elapsed;
        output.WriteLine($"{sources.Length * MutantsPerSource} mutants in {elapsed.TotalSeconds:F1} s; " +
            string.Join(", ", outcomes.OrderBy(o => o.Key, StringComparer.Ordinal).Select(o => $"{o.Key} {o.Value}")));

        Assert.True(failures.Count == 0, $"{failures.Count} mutants failed (rebuild one with Mutate(source, extension, seed)):\n{string.Join('\n', failures)}");
        await Poll.UntilAsync(() => ChildProcesses.Decoders(_folder).Count == 0, TimeSpan.FromSeconds(5));
        Assert.Empty(ChildProcesses.Decoders(_folder));
        Assert.Empty(TempEntries().Except(tempBefore));
    }

    [Theory]
    [InlineData(0xFFFFFFF0u, "4294967280")]
    [InlineData(2_000_000_000u, "2000000000")]
    public async Task StatedFrameCountHuge_EndsQuicklyAsSuccessOrTypedError(uint sampleCount, string nbFrames)
    {
        string source = MakeSources()[0];
        byte[] bytes = File.ReadAllBytes(source);
        int stts = Find(bytes, "stts"u8, 0);
        Assert.True(stts > 0, "no stts box");
        // stts: version/flags, entry count, then (sample count, sample delta) per entry; one entry at a constant rate.
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(stts + 8)));
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(stts + 12), sampleCount);
        string path = Path.Combine(_folder, $"stts-{sampleCount}.mp4");
        File.WriteAllBytes(path, bytes);
        using (var probe = FfTools.ProbeJson(path, "-select_streams", "v:0", "-show_entries", "stream=nb_frames"))
        {
            Assert.Equal(nbFrames, FfTools.Field(probe.RootElement.GetProperty("streams")[0], "nb_frames"));
        }

        await using var encoder = await TinyEncoder.LoadAsync();
        using var reader = new VideoReader();
        var clock = Stopwatch.StartNew();
        var (outcome, failure) = await RunAsync(reader, encoder, path, TimeSpan.FromSeconds(10));
        output.WriteLine($"nb_frames={nbFrames}: {outcome} in {clock.ElapsedMilliseconds} ms");
        Assert.True(failure is null, failure);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed.TotalSeconds:F1} s");
    }

    [Theory]
    [InlineData("mdhd", 16)] // version 0: version/flags, creation, modification, timescale, then duration
    [InlineData("tkhd", 20)] // version 0: version/flags, creation, modification, track id, reserved, then duration
    [InlineData("mvhd", 16)]
    public async Task DurationFieldHuge_EndsQuicklyAsSuccessOrTypedError(string box, int durationOffset)
    {
        string source = MakeSources()[0];
        byte[] bytes = File.ReadAllBytes(source);
        int at = Find(bytes, Encoding.ASCII.GetBytes(box), 0);
        Assert.True(at > 0, $"no {box} box");
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(at + 4 + durationOffset), 0xFFFFFFF0);
        string path = Path.Combine(_folder, $"{box}-huge.mp4");
        File.WriteAllBytes(path, bytes);

        await using var encoder = await TinyEncoder.LoadAsync();
        using var reader = new VideoReader();
        var clock = Stopwatch.StartNew();
        var (outcome, failure) = await RunAsync(reader, encoder, path, TimeSpan.FromSeconds(10));
        output.WriteLine($"{box} duration 0xFFFFFFF0: {outcome} in {clock.ElapsedMilliseconds} ms");
        Assert.True(failure is null, failure);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed.TotalSeconds:F1} s");
    }

    /// <summary>
    /// One to three seeded mutations of <paramref name="source"/>: byte flips in the first KiB, a size or
    /// count field set to an extreme number, a cut at a random point, or a chunk duplicated elsewhere.
    /// </summary>
    public static (byte[] Bytes, string Steps) Mutate(byte[] source, string extension, int seed)
    {
        ArgumentNullException.ThrowIfNull(source);
        var random = new Random(seed);
        var bytes = source.ToList();
        var steps = new List<string>();
        int count = random.Next(1, 4);
        for (int m = 0; m < count && bytes.Count > 16; m++)
        {
            int header = Math.Min(bytes.Count, 1024);
            switch (random.Next(5))
            {
                case 0:
                    for (int k = random.Next(1, 9); k > 0; k--)
                    {
                        int at = random.Next(header);
                        byte with = (byte)random.Next(1, 256);
                        bytes[at] ^= with;
                        steps.Add(string.Create(CultureInfo.InvariantCulture, $"xor byte {at} with 0x{with:X2}"));
                    }

                    break;
                case 1:
                case 4:
                    {
                        var (at, bigEndian, what) = FieldToOverwrite(bytes, extension, random);
                        uint value = Extremes[random.Next(Extremes.Length)];
                        Write(bytes, at, value, bigEndian);
                        steps.Add(string.Create(CultureInfo.InvariantCulture, $"{what} at {at} := 0x{value:X8}{(bigEndian ? "" : " (LE)")}"));
                        break;
                    }

                case 2:
                    {
                        int at = random.Next(bytes.Count / 20, bytes.Count);
                        bytes.RemoveRange(at, bytes.Count - at);
                        steps.Add(string.Create(CultureInfo.InvariantCulture, $"truncate at {at}"));
                        break;
                    }

                default:
                    {
                        int from = random.Next(bytes.Count);
                        int length = Math.Min(random.Next(16, 513), bytes.Count - from);
                        int to = random.Next(bytes.Count);
                        bytes.InsertRange(to, bytes.GetRange(from, length));
                        steps.Add(string.Create(CultureInfo.InvariantCulture, $"duplicate [{from}, {from + length}) at {to}"));
                        break;
                    }
            }
        }

        return (bytes.ToArray(), string.Join("; ", steps));
    }

    /// <summary>Probe, an evaluation-plan decode and an embedding: the outcome, and why it is a failure (null when it is not).</summary>
    private static async Task<(string Outcome, string? Failure)> RunAsync(VideoReader reader, TinyEncoder encoder, string path, TimeSpan? timeout = null)
    {
        var limits = new VideoLimits { ProcessTimeout = timeout ?? ProcessTimeout };
        // A probe is one process; a decode (or an embedding) at most two: the seek and the fallback.
        var slack = TimeSpan.FromSeconds(3);
        string stage = "probe";
        var clock = Stopwatch.StartNew();
        try
        {
            var media = await reader.GetMediaInfoAsync(path, limits).WaitAsync(limits.ProcessTimeout * 3);
            if (clock.Elapsed > limits.ProcessTimeout + slack)
            {
                return ("slow", $"the probe took {clock.Elapsed.TotalSeconds:F1} s, timeout {limits.ProcessTimeout.TotalSeconds} s");
            }

            if (!media.HasVideo)
            {
                return ("no video", null);
            }

            stage = "decode";
            clock.Restart();
            var plan = SamplingPlan.Evaluation(media.Grid(), new ClipSpec(4, 2), 2);
            await reader.DecodeAsync(media, plan, FrameGeometry.CenterCrop(40, 32), limits).WaitAsync(limits.ProcessTimeout * 3);
            if (clock.Elapsed > 2 * limits.ProcessTimeout + slack)
            {
                return ("slow", $"the decode took {clock.Elapsed.TotalSeconds:F1} s, timeout {limits.ProcessTimeout.TotalSeconds} s");
            }

            stage = "embed";
            clock.Restart();
            var embedding = await encoder.EmbedAsync(reader, path, limits).WaitAsync(limits.ProcessTimeout * 3);
            if (clock.Elapsed > 2 * limits.ProcessTimeout + slack)
            {
                return ("slow", $"the embedding took {clock.Elapsed.TotalSeconds:F1} s, timeout {limits.ProcessTimeout.TotalSeconds} s");
            }

            string? problem = TinyEncoder.Problem(embedding);
            return problem is null ? ("success", null) : ("bad embedding", problem);
        }
        catch (CvrlException e)
        {
            if (clock.Elapsed > 2 * limits.ProcessTimeout + slack)
            {
                return ("slow", $"{stage} failed with {e.Kind} after {clock.Elapsed.TotalSeconds:F1} s");
            }

            return ($"{e.Kind}: {stage}", null);
        }
        catch (TimeoutException)
        {
            return ("hung", $"{stage} had not returned after {(limits.ProcessTimeout * 3).TotalSeconds} s");
        }
#pragma warning disable CA1031 // Any other exception is the bug this test reports, with the mutant's seed.
        catch (Exception e)
#pragma warning restore CA1031
        {
            return ($"UNTYPED {e.GetType().Name}: {stage}", $"{stage} threw {e.GetType().FullName}: {e.Message}");
        }
    }

    /// <summary>Where a size or count field lies: BMFF boxes, RIFF chunks, Matroska elements; else a random header offset.</summary>
    private static (int At, bool BigEndian, string What) FieldToOverwrite(List<byte> bytes, string extension, Random random)
    {
        byte[] data = bytes.ToArray();
        int header = Math.Min(data.Length, 4096);
        if (extension == ".mp4")
        {
            string[] boxes = ["moov", "trak", "mdia", "minf", "stbl", "stsd", "stts", "stss", "stsc", "stsz", "stco", "ctts", "mdhd", "tkhd", "mvhd", "avcC", "elst"];
            var found = boxes.Select(b => (Box: b, At: Find(data, Encoding.ASCII.GetBytes(b), 0))).Where(f => f.At >= 4).ToArray();
            if (found.Length > 0)
            {
                var (box, at) = found[random.Next(found.Length)];
                // The box's size, or one of the first counts/fields after its version and flags.
                int field = random.Next(5);
                return field == 0 ? (at - 4, true, $"{box} size") : (at + 4 + 4 * field, true, $"{box} field {field}");
            }
        }
        else if (extension == ".avi")
        {
            string[] chunks = ["RIFF", "LIST", "avih", "strh", "strf", "movi", "idx1", "00dc"];
            var found = chunks.Select(c => (Chunk: c, At: Find(data, Encoding.ASCII.GetBytes(c), 0))).Where(f => f.At >= 0).ToArray();
            if (found.Length > 0)
            {
                var (chunk, at) = found[random.Next(found.Length)];
                // The chunk's size, or a header field (avih total frames is field 4, strh length field 8).
                int field = random.Next(11);
                return field == 0 ? (at + 4, false, $"{chunk} size") : (at + 4 + 4 * field, false, $"{chunk} field {field}");
            }
        }
        else if (extension == ".mkv")
        {
            byte[][] ids = [[0x18, 0x53, 0x80, 0x67], [0x15, 0x49, 0xA9, 0x66], [0x16, 0x54, 0xAE, 0x6B], [0x1F, 0x43, 0xB6, 0x75], [0x1C, 0x53, 0xBB, 0x6B], [0x44, 0x89], [0xAE], [0xA3]];
            var found = ids.Select(id => (Id: id, At: Find(data, id, 0))).Where(f => f.At >= 0).ToArray();
            if (found.Length > 0)
            {
                var (id, at) = found[random.Next(found.Length)];
                // The element's size varint and what follows it.
                return (at + id.Length, true, $"element {Convert.ToHexString(id)} size");
            }
        }

        return (random.Next(Math.Max(1, header - 4)), random.Next(2) == 0, "header word");
    }

    private static void Write(List<byte> bytes, int at, uint value, bool bigEndian)
    {
        Span<byte> word = stackalloc byte[4];
        if (bigEndian)
        {
            BinaryPrimitives.WriteUInt32BigEndian(word, value);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(word, value);
        }

        for (int k = 0; k < 4 && at + k < bytes.Count; k++)
        {
            bytes[at + k] = word[k];
        }
    }

    private static int Find(byte[] data, ReadOnlySpan<byte> pattern, int from) =>
        data.AsSpan(from).IndexOf(pattern) is var i and >= 0 ? from + i : -1;

    private string[] MakeSources()
    {
        const string Source = "testsrc2=s=64x48:r=25";
        string mp4 = Path.Combine(_folder, "source.mp4");
        string mkv = Path.Combine(_folder, "source.mkv");
        string avi = Path.Combine(_folder, "source.avi");
        if (!File.Exists(mp4))
        {
            FfTools.Ffmpeg("-f", "lavfi", "-i", Source, "-frames:v", "12", "-c:v", "libx264", "-g", "4", "-bf", "2", "-pix_fmt", "yuv420p", "-movflags", "+faststart", mp4);
            FfTools.Ffmpeg("-f", "lavfi", "-i", Source, "-frames:v", "12", "-c:v", "libx264", "-g", "4", "-bf", "2", "-pix_fmt", "yuv420p", mkv);
            // No B-frames: an AVI with them already fails unmutated (IrregularFootageTests), which would hide what the mutations do.
            FfTools.Ffmpeg("-f", "lavfi", "-i", Source, "-frames:v", "12", "-c:v", "mpeg4", "-q:v", "2", "-g", "4", avi);
        }

        return [mp4, mkv, avi];
    }

    private static HashSet<string> TempEntries() =>
        Directory.EnumerateFileSystemEntries(Path.GetTempPath()).ToHashSet(StringComparer.Ordinal);

}
