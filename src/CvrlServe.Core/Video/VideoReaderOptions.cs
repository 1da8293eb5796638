namespace CvrlServe.Core.Video;

/// <summary>Settings of a <see cref="VideoReader"/>: where ffmpeg is, how many run at once, what is accepted, how much memory decoded video may hold.</summary>
public sealed class VideoReaderOptions
{
    /// <summary>
    /// Demuxers an upload may be read with (ffmpeg's <c>-format_whitelist</c>). Playlists and concat lists
    /// (hls, concat, image2…) are absent on purpose: they make ffmpeg open other files or URLs.
    /// </summary>
    public static IReadOnlyList<string> DefaultAllowedFormats { get; } =
        ["mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "flv", "mpegts", "mpeg", "asf", "ogg", "gif"];

    /// <summary>
    /// Decoders (libavcodec's names) a file may be probed and decoded with (ffmpeg's
    /// <c>-codec_whitelist</c>, on both the command line and the decode worker): the video codecs of the
    /// accepted containers and the audio and subtitle codecs found beside them, so that rarely used
    /// decoders, and their bugs, stay out of reach of uploads. A file with a stream in another codec is
    /// refused as unsupported (ffprobe opens a decoder for every stream).
    /// </summary>
    public static IReadOnlyList<string> DefaultAllowedDecoders { get; } =
    [
        // video
        "h264", "hevc", "vp8", "vp9", "av1", "libdav1d", "libaom-av1", "mpeg4", "msmpeg4v1", "msmpeg4v2", "msmpeg4", "h263", "h263p",
        "flv", "mpeg1video", "mpeg2video", "mjpeg", "theora", "vp6", "vp6f", "wmv1", "wmv2", "wmv3", "vc1", "cinepak", "gif", "png",
        "prores", "dnxhd", "rawvideo",
        // audio
        "aac", "aac_fixed", "aac_latm", "mp3float", "mp3", "mp2", "mp2float", "mp1", "mp1float", "ac3", "ac3_fixed", "eac3", "opus",
        "vorbis", "flac", "alac", "wmav1", "wmav2", "amrnb", "amrwb", "adpcm_ima_wav", "adpcm_ms", "dca", "truehd",
        "pcm_s16le", "pcm_s16be", "pcm_u8", "pcm_s24le", "pcm_s24be", "pcm_s32le", "pcm_f32le", "pcm_f64le", "pcm_mulaw", "pcm_alaw",
        // subtitles
        "mov_text", "srt", "subrip", "ssa", "ass", "webvtt", "dvdsub", "dvbsub",
    ];

    /// <summary>Folder holding ffmpeg and ffprobe; null finds them on PATH.</summary>
    public string? BinaryFolder { get; set; }

    /// <summary>Most ffmpeg/ffprobe processes this reader runs at once; the rest wait their turn.</summary>
    public int MaxConcurrentProcesses { get; set; } = Math.Max(1, Environment.ProcessorCount);

    /// <summary>The reader's limits; a request may tighten them.</summary>
    public VideoLimits Limits { get; set; } = new();

    public IReadOnlyList<string> AllowedFormats { get; set; } = DefaultAllowedFormats;

    /// <summary>Decoders a file may use (see <see cref="DefaultAllowedDecoders"/>).</summary>
    public IReadOnlyList<string> AllowedDecoders { get; set; } = DefaultAllowedDecoders;

    /// <summary>Frames closer than this are read through rather than reached by a seek.</summary>
    public double SeekGapSeconds { get; set; } = 2.0;

    /// <summary>Media information kept (by path, size and modification time).</summary>
    public int MediaInfoCacheCapacity { get; set; } = 1024;

    /// <summary>
    /// Bytes that decoded video may hold at once across every request of the process (frames, views and
    /// the float tensors made from them): a quarter of the memory available to the process, at least 1 GiB.
    /// </summary>
    public long DecodedMemoryBudgetBytes { get; set; } =
        Math.Max(1L << 30, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 4);

    /// <summary>Requests that may wait for decoded memory; beyond, they are refused as overloaded.</summary>
    public int MaxWaitingDecodes { get; set; } = 64;

    /// <summary>Most bytes of ffprobe's JSON read; a file whose metadata is larger is refused.</summary>
    public int MaxMediaInfoBytes { get; set; } = 256 * 1024;

    /// <summary>Whether files are read by the persistent decode worker (the default where it is installed) or by ffmpeg processes.</summary>
    public DecodePath DecodePath { get; set; } = DecodePath.Auto;

    /// <summary>The decode worker binary; null looks beside the application, then on PATH.</summary>
    public string? DecodeWorkerPath { get; set; }

    /// <summary>Resource limits of each decode worker process.</summary>
    public DecodeWorkerLimits DecodeWorkerLimits { get; set; } = new();

    /// <summary>Refuses settings that cannot work, naming each.</summary>
    public void Validate()
    {
        var problems = new List<string>();
        if (MaxConcurrentProcesses < 1)
        {
            problems.Add("MaxConcurrentProcesses must be at least 1");
        }

        if (AllowedFormats is not { Count: > 0 } || AllowedFormats.Any(f => string.IsNullOrWhiteSpace(f) || f.Any(c => !(char.IsAsciiLetterOrDigit(c) || c == '_'))))
        {
            problems.Add("AllowedFormats must name ffmpeg demuxers (letters, digits, '_')");
        }

        if (AllowedDecoders is not { Count: > 0 } || AllowedDecoders.Any(d => string.IsNullOrWhiteSpace(d) || d.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))))
        {
            problems.Add("AllowedDecoders must name libavcodec decoders (letters, digits, '_', '-')");
        }

        if (!(SeekGapSeconds > DecodeCommand.SeekMarginSeconds && double.IsFinite(SeekGapSeconds)))
        {
            problems.Add($"SeekGapSeconds must exceed {DecodeCommand.SeekMarginSeconds}");
        }

        if (MediaInfoCacheCapacity < 0 || DecodedMemoryBudgetBytes < 1 || MaxWaitingDecodes < 0 || MaxMediaInfoBytes < 1024)
        {
            problems.Add("MediaInfoCacheCapacity, DecodedMemoryBudgetBytes, MaxWaitingDecodes and MaxMediaInfoBytes must be positive (MaxMediaInfoBytes at least 1024)");
        }

        problems.AddRange(DecodeWorkerLimits?.Problems() ?? ["DecodeWorkerLimits must be set"]);
        try
        {
            Limits.Validate();
        }
        catch (InvalidRequestException e)
        {
            problems.Add(e.Message);
        }

        if (problems.Count > 0)
        {
            throw new ArgumentException($"Invalid video reader options: {string.Join("; ", problems)}.");
        }
    }
}
