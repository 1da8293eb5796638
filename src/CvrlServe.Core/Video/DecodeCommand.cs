using System.Globalization;
using System.Text;
using FFMpegCore;
using FFMpegCore.Pipes;

namespace CvrlServe.Core.Video;

/// <summary>One ffmpeg input: the options that go before its <c>-i</c>, and the file.</summary>
public sealed record DecodeInput(string Options, string Path);

/// <summary>
/// An ffmpeg invocation that writes the frames of a plan as raw rgb24, ascending frame index, each
/// distinct frame once. Built by <see cref="DecodeCommand.Build"/>, a pure function tested on its own; the
/// benchmark runs the same text from bash.
/// </summary>
public sealed record DecodeCommand(IReadOnlyList<DecodeInput> Inputs, string OutputOptions, int Frames, int Width, int Height)
{
    /// <summary>Options every run gets: quiet logs, no stdin, original timestamps (frame selection uses them).</summary>
    public const string GlobalOptions = "-nostdin -v error -copyts";

    /// <summary>rgb24 bytes ffmpeg must write.</summary>
    public long ExpectedBytes => (long)Frames * Width * Height * 3;

    /// <summary>
    /// The command for one video. With <paramref name="seek"/>, frames closer together than
    /// <paramref name="seekGapSeconds"/> are read in one pass and each further run of frames is a separate
    /// input that seeks to it (<c>-ss</c> before <c>-i</c>): all runs in one process, joined by concat.
    /// Without, one input decodes from the start: the fallback when a seek returns too little.
    /// </summary>
    public static DecodeCommand Build(
        MediaInfo media,
        SamplingPlan plan,
        FrameGeometry geometry,
        IReadOnlyCollection<string> allowedFormats,
        bool seek,
        double seekGapSeconds = 2.0)
    {
        ArgumentNullException.ThrowIfNull(media);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(geometry);
        var grid = plan.Grid;
        int[] frames = plan.DistinctFrames();
        if (frames.Length == 0 || frames[0] < 0 || frames[^1] >= grid.Count)
        {
            throw new ArgumentException($"The plan's frames must lie in [0, {grid.Count}).", nameof(plan));
        }

        var (width, height) = geometry.ResizedSize(media.Width, media.Height);
        int maxGap = seek ? Math.Max(1, (int)Math.Ceiling(seekGapSeconds * grid.Rate)) : int.MaxValue;
        var segments = Segments(frames, maxGap);

        string safety = $"-protocol_whitelist file,pipe -format_whitelist {string.Join(',', allowedFormats)}";
        // -ss counts from the container's start; frame i of the grid is shown at the video's start + i/R.
        double lead = (media.StartTime - media.ContainerStartTime).TotalSeconds;
        var inputs = new List<DecodeInput>(segments.Count);
        var graph = new StringBuilder();
        for (int i = 0; i < segments.Count; i++)
        {
            int[] run = segments[i];
            // Half a frame either side of the run: the first kept frame is exactly run[0], jitter included.
            double from = run[0] == 0 || !seek ? 0 : lead + (run[0] - 0.5) / grid.Rate;
            double until = lead + (run[^1] + 1) / grid.Rate;
            string ss = from > 0 ? $"-ss {Seconds(from)} " : "";
            inputs.Add(new DecodeInput($"{ss}-t {Seconds(until - from)} {safety}", media.Path));
            graph.Append(CultureInfo.InvariantCulture,
                $"[{i}:v]fps={Number(grid.Rate)},select='{SelectExpression(run, grid)}',scale={width}:{height}:flags={geometry.ScaleFlags},format=rgb24");
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

        string output = $"-filter_complex \"{graph}\" -map \"[out]\" -fps_mode passthrough -pix_fmt rgb24";
        return new DecodeCommand(inputs, output, frames.Length, width, height);
    }

    /// <summary>The command as FFMpegCore runs it, writing into <paramref name="sink"/>.</summary>
    public FFMpegArgumentProcessor ToProcessor(IPipeSink sink)
    {
        var first = Inputs[0];
        var arguments = FFMpegArguments.FromFileInput(first.Path, false, o => o.WithCustomArgument($"{GlobalOptions} {first.Options}"));
        foreach (var input in Inputs.Skip(1))
        {
            arguments = arguments.AddFileInput(input.Path, false, o => o.WithCustomArgument(input.Options));
        }

        return arguments.OutputToPipe(sink, o => o.WithCustomArgument(OutputOptions));
    }

    /// <summary>The same command line for bash, writing raw frames to stdout.</summary>
    public string ToShellCommand(string ffmpeg)
    {
        var text = new StringBuilder(ffmpeg).Append(' ').Append(GlobalOptions);
        foreach (var input in Inputs)
        {
            text.Append(' ').Append(input.Options).Append(" -i '").Append(input.Path.Replace("'", "'\\''", StringComparison.Ordinal)).Append('\'');
        }

        return text.Append(' ').Append(OutputOptions).Append(" -f rawvideo pipe:1").ToString();
    }

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
    /// True for the grid slots of <paramref name="run"/>: the slot is round((t − start)·R), and an
    /// arithmetic run is one <c>between</c>/<c>mod</c> term rather than one <c>eq</c> per frame.
    /// </summary>
    internal static string SelectExpression(int[] run, FrameGrid grid)
    {
        string slot = $"round((t-{Seconds(grid.StartTime.TotalSeconds)})*{Number(grid.Rate)})";
        int step = run.Length > 1 ? run[1] - run[0] : 1;
        bool arithmetic = true;
        for (int i = 2; i < run.Length && arithmetic; i++)
        {
            arithmetic = run[i] - run[i - 1] == step;
        }

        if (arithmetic)
        {
            string range = $"between({slot},{run[0]},{run[^1]})";
            return step == 1 ? range : $"{range}*not(mod({slot}-{run[0]},{step}))";
        }

        return string.Join('+', run.Select(k => $"eq({slot},{k})"));
    }

    private static string Seconds(double seconds) => seconds.ToString("0.######", CultureInfo.InvariantCulture);

    private static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
