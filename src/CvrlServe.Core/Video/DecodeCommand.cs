using System.Globalization;
using System.Text;

namespace CvrlServe.Core.Video;

/// <summary>One ffmpeg input: the options that go before its <c>-i</c>, and the file.</summary>
public sealed record DecodeInput(IReadOnlyList<string> Options, string Path);

/// <summary>
/// An ffmpeg invocation that writes the frames of a plan as raw rgb24, ascending frame index, each
/// distinct frame once. Each output frame holds <see cref="Tiles"/> crops side by side
/// (<see cref="TileWidth"/> × <see cref="TileHeight"/> each): ffmpeg resizes, converts to rgb24 and crops,
/// so only the pixels the views use cross the pipe. Built by <see cref="Build"/>, a pure function tested
/// on its own; <see cref="Arguments"/> is the argument list, passed to the process item by item.
/// </summary>
public sealed record DecodeCommand(IReadOnlyList<DecodeInput> Inputs, string FilterGraph, int Frames, int Tiles, int TileWidth, int TileHeight)
{
    /// <summary>
    /// How far before a run a seeking input starts, at least: two grid frames where that is more. The
    /// picture on screen at the run's first slot is decoded when it started within the margin; when it
    /// started earlier (a longer gap in a variable-rate video) the seek comes back short and the reader
    /// reads from the start, so the frames are right either way and the margin only trades decoding
    /// before each run (everything from the keyframe before the margin) against those fallbacks. It was
    /// 1 s, which decoded a second of frames per clip for nothing on constant-rate video.
    /// </summary>
    public const double SeekMarginSeconds = 0.1;

    /// <summary>How far before a run a seeking input starts in MPEG-TS/PS, whose seeks land late.</summary>
    public const double ImpreciseSeekMarginSeconds = 10.0;

    /// <summary>Width of one output frame: the tiles side by side.</summary>
    public int Width => Tiles * TileWidth;

    public int Height => TileHeight;

    /// <summary>rgb24 bytes of one output frame.</summary>
    public long FrameBytes => (long)Width * Height * 3;

    /// <summary>rgb24 bytes ffmpeg must write.</summary>
    public long ExpectedBytes => Frames * FrameBytes;

    /// <summary>
    /// The command for one video. With <paramref name="seek"/>, frames closer together than
    /// <paramref name="seekGapSeconds"/> are read in one pass and each further run of frames is a separate
    /// input that seeks a margin (<see cref="SeekMarginSeconds"/>) before it (<c>-ss</c> before <c>-i</c>, so the picture on screen at the
    /// run's first slot is decoded even after a short gap in a variable-rate video): all runs in one process,
    /// joined by concat. Without, one input decodes from the start: the fallback when a seek returns too little.
    /// </summary>
    public static DecodeCommand Build(
        MediaInfo media,
        SamplingPlan plan,
        FrameGeometry geometry,
        IReadOnlyCollection<string> allowedFormats,
        bool seek,
        double seekGapSeconds = 2.0,
        long maxPixelsPerFrame = 3840L * 2160,
        IReadOnlyCollection<string>? allowedDecoders = null)
    {
        ArgumentNullException.ThrowIfNull(media);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(geometry);
        ArgumentNullException.ThrowIfNull(allowedFormats);
        var grid = plan.Grid;
        int[] frames = plan.DistinctFrames();
        if (frames.Length == 0 || frames[0] < 0 || frames[^1] >= grid.Count)
        {
            throw new InvalidRequestException($"The plan's frames must lie in [0, {grid.Count}).");
        }

        var (width, height) = geometry.ResizedSize(media.Width, media.Height);
        var crops = geometry.Crops(width, height);
        // MPEG-TS/PS seeks land on the next keyframe after the target, not the one before: start well
        // before the run (a GOP rarely spans 10 s) and read through gaps shorter than that.
        double margin = media.ContainerFormat is "mpegts" or "mpeg" ? ImpreciseSeekMarginSeconds : Math.Max(SeekMarginSeconds, 2 / grid.Rate);
        int maxGap = seek ? Math.Max(1, (int)Math.Ceiling(Math.Max(seekGapSeconds, margin + 1) * grid.Rate)) : int.MaxValue;
        var segments = Segments(frames, maxGap);

        // -max_pixels: a decoder refuses pictures larger than the limit even when the header lied about the size.
        string[] safety = ["-protocol_whitelist", "file", "-format_whitelist", string.Join(',', allowedFormats),
            "-max_pixels", maxPixelsPerFrame.ToString(CultureInfo.InvariantCulture),
            .. allowedDecoders is { Count: > 0 } ? new[] { "-codec_whitelist", string.Join(',', allowedDecoders) } : []];
        // -ss counts from the container's start; frame i of the grid is shown at the video's start + i/R.
        double lead = (media.StartTime - media.ContainerStartTime).TotalSeconds;
        string rate = Number(grid.Rate);
        string path = "file:" + System.IO.Path.GetFullPath(media.Path);
        var inputs = new List<DecodeInput>(segments.Count);
        var graph = new StringBuilder();
        for (int i = 0; i < segments.Count; i++)
        {
            int[] run = segments[i];
            // A margin before the run, so that the picture on screen at its first slot (which may have
            // started before the slot, in a variable-rate video) is decoded; select drops the rest.
            double from = seek ? Math.Max(0, lead + run[0] / grid.Rate - margin) : 0;
            double until = lead + (run[^1] + 1) / grid.Rate;
            var options = new List<string>();
            if (from > 0)
            {
                options.AddRange(["-ss", Seconds(from)]);
            }

            options.AddRange(["-t", Seconds(until - from), .. safety]);
            inputs.Add(new DecodeInput(options, path));

            // From the start, fps begins at the grid's start: a slot before the first picture holds the
            // first picture (some files' first frame comes a frame late). After a seek it begins at the
            // first frame decoded; either way a slot in a gap holds the picture before it.
            // Timestamps are shifted so the grid starts at 0: slot i is then exactly at i/R, where the fps
            // filter puts its frames.
            string start = from > 0 ? "" : ":start_time=0";
            graph.Append(CultureInfo.InvariantCulture,
                $"[{i}:v]setpts=PTS-{Seconds(grid.StartTime.TotalSeconds)}/TB,fps=fps={rate}{start},select='{SelectExpression(run, grid)}',scale={width}:{height}:flags={geometry.ScaleFlags},format=rgb24");
            AppendCrops(graph, crops, width, height, i);
            graph.Append(segments.Count == 1 ? "[out]" : $"[v{i}];");
        }

        if (segments.Count > 1)
        {
            for (int i = 0; i < segments.Count; i++)
            {
                graph.Append(CultureInfo.InvariantCulture, $"[v{i}]");
            }

            graph.Append(CultureInfo.InvariantCulture, $"concat=n={segments.Count}:v=1:a=0[out]");
        }

        return new DecodeCommand(inputs, graph.ToString(), frames.Length, crops.Count, crops[0].Width, crops[0].Height);
    }


    /// <summary>The full argument list after the ffmpeg binary: raw rgb24 frames to stdout.</summary>
    public IReadOnlyList<string> Arguments()
    {
        var arguments = new List<string> { "-nostdin", "-hide_banner", "-v", "error", "-copyts" };
        foreach (var input in Inputs)
        {
            arguments.AddRange(input.Options);
            arguments.AddRange(["-i", input.Path]);
        }

        arguments.AddRange(["-filter_complex", FilterGraph, "-map", "[out]", "-fps_mode", "passthrough", "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]);
        return arguments;
    }

    /// <summary>The same command line for bash (each argument single-quoted), writing raw frames to stdout.</summary>
    public string ToShellCommand(string ffmpeg) =>
        string.Join(' ', new[] { ffmpeg }.Concat(Arguments()).Select(a => "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'"));

    /// <summary>Splits ascending frames into runs whose neighbours are at most <paramref name="maxGap"/> apart.</summary>
    internal static List<int[]> Segments(int[] frames, int maxGap)
    {
        var segments = new List<int[]>();
        int start = 0;
        for (int i = 1; i <= frames.Length; i++)
        {
            if (i == frames.Length || frames[i] - frames[i - 1] > maxGap)
            {
                segments.Add(frames[start..i]);
                start = i;
            }
        }

        return segments;
    }

    /// <summary>
    /// True for the grid slots of <paramref name="run"/>: the slot is round(t·R). The run is written as its
    /// maximal arithmetic pieces, each one <c>between</c>/<c>mod</c> term (a single frame one <c>eq</c>), so
    /// the expression grows with the number of clips, not of frames (one argument must stay under the
    /// kernel's 128 KB). Timestamps were shifted so the grid starts at 0 (<c>setpts</c>), so the fps
    /// filter's frames sit exactly on the grid's slots: no tie to round when the video starts half a frame
    /// off a multiple of 1/R (0.02 s at 25 fps).
    /// </summary>
    internal static string SelectExpression(int[] run, FrameGrid grid)
    {
        string slot = $"round(t*{Number(grid.Rate)})";
        var terms = new List<string>();
        for (int first = 0; first < run.Length;)
        {
            int last = first;
            int step = first + 1 < run.Length ? run[first + 1] - run[first] : 1;
            while (last + 1 < run.Length && run[last + 1] - run[last] == step)
            {
                last++;
            }

            terms.Add(last == first
                ? $"eq({slot},{run[first]})"
                : step == 1
                    ? $"between({slot},{run[first]},{run[last]})"
                    : $"between({slot},{run[first]},{run[last]})*not(mod({slot}-{run[first]},{step}))");
            first = last + 1;
        }

        return string.Join('+', terms);
    }

    /// <summary>Crops in rgb24 (exact to the pixel, no chroma alignment); several crops are stacked side by side.</summary>
    private static void AppendCrops(StringBuilder graph, IReadOnlyList<CropBox> crops, int width, int height, int segment)
    {
        static string Crop(CropBox b) => $"crop={b.Width}:{b.Height}:{b.X}:{b.Y}:exact=1";
        if (crops.Count == 1)
        {
            var box = crops[0];
            if (box != new CropBox(0, 0, width, height))
            {
                graph.Append(',').Append(Crop(box));
            }

            return;
        }

        graph.Append(CultureInfo.InvariantCulture, $",split={crops.Count}");
        for (int k = 0; k < crops.Count; k++)
        {
            graph.Append(CultureInfo.InvariantCulture, $"[s{segment}_{k}]");
        }

        for (int k = 0; k < crops.Count; k++)
        {
            graph.Append(CultureInfo.InvariantCulture, $";[s{segment}_{k}]{Crop(crops[k])}[c{segment}_{k}]");
        }

        graph.Append(';');
        for (int k = 0; k < crops.Count; k++)
        {
            graph.Append(CultureInfo.InvariantCulture, $"[c{segment}_{k}]");
        }

        graph.Append(CultureInfo.InvariantCulture, $"hstack=inputs={crops.Count}");
    }

    private static string Seconds(double seconds) => seconds.ToString("0.######", CultureInfo.InvariantCulture);

    private static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
