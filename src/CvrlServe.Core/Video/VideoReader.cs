using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;

namespace CvrlServe.Core.Video;

/// <summary>
/// The one way the project reads video: read a file's media information, then decode a
/// <see cref="SamplingPlan"/> at a <see cref="FrameGeometry"/> into rgb24 views. Thread-safe; a server
/// holds one instance, so its cap on concurrent ffmpeg processes and its decoded-memory budget hold
/// across requests. ffprobe and ffmpeg run through <see cref="ToolProcess"/> (arguments as a list, files
/// named <c>file:/absolute/path</c>), so no file name can become an option, a protocol or a concat list.
/// </summary>
public sealed class VideoReader : IDisposable
{
    private readonly VideoReaderOptions _options;
    private readonly SemaphoreSlim _processSlots;
    private readonly string _ffmpeg;
    private readonly string _ffprobe;
    private readonly ConcurrentDictionary<(string Path, long Bytes, DateTime Modified), MediaInfo> _media = new();
    private readonly DecodeWorkerPool? _workers;
    private readonly string? _noWorker;
    private long _cliFallbacks;
    private long _nvdecDecodes;
    private long _softwareDecodes;
    private string? _lastSoftwareReason;

    public VideoReader(VideoReaderOptions? options = null)
    {
        _options = options ?? new VideoReaderOptions();
        _options.Validate();
        _processSlots = new SemaphoreSlim(_options.MaxConcurrentProcesses, _options.MaxConcurrentProcesses);
        MemoryBudget = new MemoryBudget(_options.DecodedMemoryBudgetBytes, _options.MaxWaitingDecodes);
        _ffmpeg = _options.BinaryFolder is { } folder ? Path.Combine(folder, "ffmpeg") : "ffmpeg";
        _ffprobe = _options.BinaryFolder is { } f ? Path.Combine(f, "ffprobe") : "ffprobe";
        if (_options.DecodePath == DecodePath.Cli)
        {
            _noWorker = "the command line was chosen (DecodePath Cli)";
        }
        else if (DecodeWorkerPool.Locate(_options.DecodeWorkerPath) is { } worker)
        {
            _workers = new DecodeWorkerPool(worker, _options.DecodeWorkerLimits);
        }
        else
        {
            _noWorker = $"{DecodeWorkerPool.BinaryName} was not found beside the application or on PATH";
        }
    }

    public VideoReaderOptions Options => _options;

    /// <summary>
    /// How this reader decodes: "worker" (the persistent libav worker) or "cli" (ffprobe and ffmpeg
    /// processes), with the reason when the worker is not used. Known after <see cref="CheckDecoderAsync"/>
    /// or the first request.
    /// </summary>
    public string DecodeBackend => _workers is { Unavailable: null }
        ? $"worker ({_workers.Versions ?? "not started yet"})"
        : $"cli ({_workers?.Unavailable ?? _noWorker})";

    /// <summary>Decodes the worker handed to the command line (a frame size change midway, an input without pictures).</summary>
    public long WorkerDeclined => Interlocked.Read(ref _cliFallbacks);

    /// <summary>
    /// With NVDEC enabled (<see cref="DecodeWorkerLimits.Nvdec"/>): decodes NVDEC served, decodes that ran
    /// in software, and why the last of those did ("software (h264_cuvid did not open: ...)"); null otherwise.
    /// </summary>
    public (long Nvdec, long Software, string? LastSoftwareReason)? NvdecUse =>
        _options.DecodeWorkerLimits.Nvdec ? (Interlocked.Read(ref _nvdecDecodes), Interlocked.Read(ref _softwareDecodes), _lastSoftwareReason) : null;

    /// <summary>True when requests go to the decode worker.</summary>
    public bool UsesWorker => _workers is { Unavailable: null };

    /// <summary>Starts a decode worker now (not at the first request) so that <see cref="DecodeBackend"/> is settled.</summary>
    public async Task<string> CheckDecoderAsync(CancellationToken cancellationToken = default)
    {
        if (_workers is not null)
        {
            await _workers.CheckAsync(cancellationToken);
        }

        return DecodeBackend;
    }

    /// <summary>The decoded-memory budget every decode of this reader reserves from.</summary>
    public MemoryBudget MemoryBudget { get; }

    /// <summary>
    /// Reads the media information of <paramref name="path"/> (cached by path, size and modification
    /// time) and checks the file size, duration, frame size and aspect ratio against the limits.
    /// Audio-only files come back with <see cref="MediaInfo.HasVideo"/> false; decoding them is an
    /// <see cref="UnsupportedMediaException"/>. A missing file is a <see cref="VideoNotFoundException"/>.
    /// </summary>
    public async Task<MediaInfo> GetMediaInfoAsync(string path, VideoLimits? limits = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(path);
        var effective = _options.Limits.Tighten(limits);
        var file = new FileInfo(path);
        if (!file.Exists)
        {
            throw new VideoNotFoundException(path);
        }

        if (file.Length == 0)
        {
            throw new UnsupportedMediaException("The file is empty.", detail: $"'{file.FullName}' is empty");
        }

        effective.CheckFile(file.Length);
        var key = (file.FullName, file.Length, file.LastWriteTimeUtc);
        if (!_media.TryGetValue(key, out var media))
        {
            media = await RunFfprobeAsync(file, effective.ProcessTimeout, cancellationToken);
            if (_media.Count >= _options.MediaInfoCacheCapacity)
            {
                _media.Clear();
            }

            _media[key] = media;
        }

        if (media.HasVideo)
        {
            effective.CheckMedia(media);
        }

        return media;
    }

    /// <summary>
    /// Bytes a decode of <paramref name="plan"/> at <paramref name="geometry"/> holds at its peak: ffmpeg's
    /// output and the views cut from it, plus float32 tensors of every view when
    /// <paramref name="withFloatTensors"/> (what an embedder makes of them). Reserve this before decoding.
    /// Checks the limits as <see cref="DecodeAsync"/> will, so nothing waits for memory it may not use.
    /// </summary>
    public long EstimateBytes(MediaInfo media, SamplingPlan plan, FrameGeometry geometry, bool withFloatTensors, VideoLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(media);
        var effective = _options.Limits.Tighten(limits);
        effective.CheckMedia(media);
        var command = DecodeCommand.Build(media, plan, geometry, _options.AllowedFormats, seek: false, allowedDecoders: _options.AllowedDecoders);
        long viewValues = ViewBytes(plan, command);
        effective.CheckDecodedBytes(command.ExpectedBytes + viewValues);
        return command.ExpectedBytes + viewValues + (withFloatTensors ? viewValues * sizeof(float) : 0);
    }

    /// <summary>Reserves decoded memory (see <see cref="Video.MemoryBudget"/>): wait, or be refused as overloaded.</summary>
    public Task<MemoryReservation> ReserveAsync(long bytes, CancellationToken cancellationToken = default) =>
        MemoryBudget.ReserveAsync(bytes, cancellationToken);

    /// <summary>
    /// Decodes every view of <paramref name="plan"/>. Frames are read in one ffmpeg process (seeking to each
    /// distant run of frames); if that returns fewer bytes than the plan needs, they are read once more
    /// from the start. A slot in a gap of a variable-rate video holds the picture before the gap. If frames
    /// are still missing and all of them lie in the video's last max(2 frames, 0.5 s), they are filled
    /// with the last delivered frame and counted in <see cref="DecodeStats.FilledTailFrames"/>; any other
    /// shortfall is a <see cref="CorruptVideoException"/>. Memory is reserved before anything is allocated
    /// or any ffmpeg slot is awaited: from <paramref name="reservation"/> when the caller holds one (it must
    /// cover <see cref="EstimateBytes"/>), else for the duration of this call.
    /// </summary>
    public async Task<DecodedVideo> DecodeAsync(
        MediaInfo media,
        SamplingPlan plan,
        FrameGeometry geometry,
        VideoLimits? limits = null,
        MemoryReservation? reservation = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(media);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(geometry);
        if (!media.HasVideo)
        {
            throw new UnsupportedMediaException("The file has no video stream.", detail: $"'{media.Path}' has no video stream");
        }

        var effective = _options.Limits.Tighten(limits);
        effective.CheckFile(media.FileBytes);
        effective.CheckMedia(media);

        var clock = Stopwatch.StartNew();
        var command = DecodeCommand.Build(media, plan, geometry, _options.AllowedFormats, seek: true, _options.SeekGapSeconds, effective.MaxPixelsPerFrame, _options.AllowedDecoders);
        long needed = command.ExpectedBytes + ViewBytes(plan, command);
        effective.CheckDecodedBytes(needed);
        if (command.ExpectedBytes > Array.MaxLength)
        {
            throw new LimitExceededException(Limit.DecodedBytes, command.ExpectedBytes, Array.MaxLength);
        }

        if (reservation is not null && reservation.Bytes < needed)
        {
            throw new ArgumentException($"The reservation holds {reservation.Bytes} bytes; this decode needs {needed}.", nameof(reservation));
        }

        using var own = reservation is null ? await MemoryBudget.ReserveAsync(needed, cancellationToken) : null;
        var frames = new byte[command.ExpectedBytes];
        var decoding = Stopwatch.StartNew();
        var (written, stderr) = await RunFfmpegAsync(command, frames, effective.ProcessTimeout, cancellationToken);
        int processes = 1;
        bool fallback = false;
        if (written != command.ExpectedBytes && command.Inputs.Any(i => i.Options.Contains("-ss")))
        {
            // A seek can return too little (engineering notes), and a short read after seeking cannot tell
            // which run fell short: read everything once more from the start.
            // The timeout bounds the whole decode, not each try: the second run gets what the first left.
            var left = effective.ProcessTimeout - decoding.Elapsed;
            if (left <= TimeSpan.Zero)
            {
                throw new DeadlineExceededException("Decoding the video", effective.ProcessTimeout, $"'{media.Path}': no time left for the read from the start");
            }

            var fromStart = DecodeCommand.Build(media, plan, geometry, _options.AllowedFormats, seek: false, maxPixelsPerFrame: effective.MaxPixelsPerFrame, allowedDecoders: _options.AllowedDecoders);
            (written, stderr) = await RunFfmpegAsync(fromStart, frames, left, cancellationToken);
            processes++;
            fallback = true;
        }

        int filled = 0;
        if (written != command.ExpectedBytes)
        {
            filled = FillTail(plan, command, frames, written, media, stderr);
        }

        var views = CutViews(plan, command, frames);
        return new DecodedVideo(media, views, new DecodeStats(processes, fallback, command.Frames, filled, clock.Elapsed));
    }

    public void Dispose()
    {
        _workers?.Dispose();
        _processSlots.Dispose();
    }

    /// <summary>Most missing frames at the end of a video that are filled rather than refused: max(2 frames, 0.5 s).</summary>
    public static int TailAllowance(FrameGrid grid)
    {
        ArgumentNullException.ThrowIfNull(grid);
        return Math.Max(2, (int)Math.Ceiling(0.5 * grid.Rate));
    }

    private static long ViewBytes(SamplingPlan plan, DecodeCommand command) =>
        plan.Clips.Sum(c => (long)c.Frames.Count) * command.Tiles * command.TileWidth * command.TileHeight * 3;

    /// <summary>
    /// ffmpeg's fps filter ends at the last picture, so a grid that runs past it (a lying duration, the
    /// rounding of a variable-rate stream) comes up short at the end: frames are delivered in ascending
    /// slot order, so the missing ones are the plan's last. Those within the tail allowance get the last
    /// delivered picture (what stays on screen); anything else means the video is corrupt.
    /// </summary>
    private static int FillTail(SamplingPlan plan, DecodeCommand command, byte[] frames, long written, MediaInfo media, IReadOnlyList<string> stderr)
    {
        int[] distinct = plan.DistinctFrames();
        int delivered = (int)Math.Min(written / command.FrameBytes, distinct.Length);
        int allowance = TailAllowance(plan.Grid);
        bool tailOnly = written < command.ExpectedBytes && delivered >= 1 && distinct[delivered] >= plan.Grid.Count - allowance;
        if (!tailOnly)
        {
            throw new CorruptVideoException(
                $"The video is truncated or corrupt: {delivered} of the {command.Frames} frames asked could be decoded.", stderr,
                $"'{media.Path}': ffmpeg wrote {written} bytes, expected {command.ExpectedBytes}; grid {plan.Grid.Count} frames at {plan.Grid.Rate} fps");
        }

        int frameBytes = (int)command.FrameBytes;
        var last = frames.AsSpan((delivered - 1) * frameBytes, frameBytes);
        for (int i = delivered; i < distinct.Length; i++)
        {
            last.CopyTo(frames.AsSpan(i * frameBytes, frameBytes));
        }

        return distinct.Length - delivered;
    }

    private static DecodedClip[] CutViews(SamplingPlan plan, DecodeCommand command, byte[] frames)
    {
        int[] distinct = plan.DistinctFrames();
        int frameBytes = (int)command.FrameBytes;
        int tileRow = command.TileWidth * 3;
        int frameRow = command.Width * 3;
        int tileBytes = tileRow * command.TileHeight;
        var views = new DecodedClip[plan.Clips.Count * command.Tiles];
        for (int c = 0; c < plan.Clips.Count; c++)
        {
            var clip = plan.Clips[c];
            var start = plan.Grid.TimeOf(clip.Frames[0]);
            var end = plan.Grid.TimeOf(clip.Frames[^1] + 1);
            for (int k = 0; k < command.Tiles; k++)
            {
                var rgb = new byte[clip.Frames.Count * tileBytes];
                for (int t = 0; t < clip.Frames.Count; t++)
                {
                    int source = Array.BinarySearch(distinct, clip.Frames[t]) * frameBytes + k * tileRow;
                    for (int y = 0; y < command.TileHeight; y++)
                    {
                        Buffer.BlockCopy(frames, source + y * frameRow, rgb, t * tileBytes + y * tileRow, tileRow);
                    }
                }

                views[c * command.Tiles + k] = new DecodedClip(c, k, clip.Frames, start, end, command.TileWidth, command.TileHeight, rgb);
            }
        }

        return views;
    }

    private async Task<MediaInfo> RunFfprobeAsync(FileInfo file, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (_workers is { Unavailable: null })
        {
            WorkerProbeResult? probe;
            await _processSlots.WaitAsync(cancellationToken);
            try
            {
                probe = await _workers.ProbeAsync("file:" + file.FullName, _options.AllowedFormats, _options.AllowedDecoders, _options.Limits.MaxPixelsPerFrame, timeout, cancellationToken);
            }
            catch (DecodeWorkerFailedException e)
            {
                throw FfmpegErrors.ClassifyProbeFailure(file.FullName, await ReadHeadAsync(file, cancellationToken), [$"decode worker: {e.Message}"], e);
            }
            finally
            {
                _processSlots.Release();
            }

            if (probe is not null)
            {
                if (probe.Status != 0)
                {
                    throw FfmpegErrors.ClassifyProbeFailure(file.FullName, await ReadHeadAsync(file, cancellationToken), FfmpegErrors.Tail(probe.Log));
                }

                if (Encoding.UTF8.GetByteCount(probe.Json) > _options.MaxMediaInfoBytes)
                {
                    throw new UnsupportedMediaException("The file's metadata is too large to read.", null, $"the worker's media information for '{file.FullName}' is over {_options.MaxMediaInfoBytes} bytes");
                }

                return MediaInfoParser.Parse(probe.Json, file.FullName, file.Length);
            }
        }

        string[] arguments =
        [
            "-hide_banner", "-v", "error", "-of", "json",
            "-protocol_whitelist", "file", "-format_whitelist", string.Join(',', _options.AllowedFormats),
            // The server's pixel limit (not a request's: the result is cached for every request).
            "-max_pixels", _options.Limits.MaxPixelsPerFrame.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-codec_whitelist", string.Join(',', _options.AllowedDecoders),
            "-select_streams", "V:0", "-read_intervals", MediaInfoParser.ReadIntervals, "-show_entries", MediaInfoParser.Entries,
            "-i", "file:" + file.FullName,
        ];
        byte[] json = [];
        ToolResult result;
        await _processSlots.WaitAsync(cancellationToken);
        try
        {
            result = await ToolProcess.RunAsync(_ffprobe, arguments, async (stdout, token) =>
                json = await ToolProcess.ReadCappedAsync(stdout, _options.MaxMediaInfoBytes, () => new UnsupportedMediaException(
                    "The file's metadata is too large to read.", null, $"ffprobe wrote more than {_options.MaxMediaInfoBytes} bytes for '{file.FullName}'"), token),
                timeout, "Reading the video's media information", cancellationToken);
        }
        finally
        {
            _processSlots.Release();
        }

        if (result.ExitCode != 0)
        {
            throw FfmpegErrors.ClassifyProbeFailure(file.FullName, await ReadHeadAsync(file, cancellationToken), result.StderrTail);
        }

        return MediaInfoParser.Parse(Encoding.UTF8.GetString(json), file.FullName, file.Length);
    }

    private static async Task<byte[]> ReadHeadAsync(FileInfo file, CancellationToken cancellationToken)
    {
        var head = new byte[256];
        await using var stream = file.OpenRead();
        int read = await stream.ReadAtLeastAsync(head, head.Length, throwOnEndOfStream: false, cancellationToken);
        return head[..read];
    }

    /// <summary>
    /// Runs one decode into <paramref name="frames"/>, by the worker where it can, else by ffmpeg; returns
    /// the bytes written (including any beyond the buffer).
    /// </summary>
    private async Task<(long Written, IReadOnlyList<string> Stderr)> RunFfmpegAsync(
        DecodeCommand command, byte[] frames, TimeSpan timeout, CancellationToken cancellationToken)
    {
        int filled = 0;
        await _processSlots.WaitAsync(cancellationToken);
        try
        {
            if (_workers is { Unavailable: null })
            {
                var clock = Stopwatch.StartNew();
                WorkerDecodeResult? answer;
                try
                {
                    answer = await _workers.DecodeAsync(command, frames, timeout, cancellationToken);
                }
                catch (DecodeWorkerFailedException e)
                {
                    throw new CorruptVideoException("The video could not be decoded: the decoder failed on it.", [$"decode worker: {e.Message}"],
                        $"'{command.Inputs[0].Path}': the decode worker failed");
                }

                if (answer is { UseCli: false })
                {
                    if (_options.DecodeWorkerLimits.Nvdec)
                    {
                        Interlocked.Increment(ref answer.OnNvdec ? ref _nvdecDecodes : ref _softwareDecodes);
                        if (!answer.OnNvdec)
                        {
                            _lastSoftwareReason = answer.Decoder;
                        }
                    }

                    return (answer.Produced, FfmpegErrors.Tail(answer.Log));
                }

                if (answer is not null)
                {
                    Interlocked.Increment(ref _cliFallbacks);
                    timeout -= clock.Elapsed;
                    if (timeout <= TimeSpan.Zero)
                    {
                        throw new DeadlineExceededException("Decoding the video", timeout + clock.Elapsed, "no time left for the command line after the worker declined");
                    }
                }
            }

            var result = await ToolProcess.RunAsync(_ffmpeg, command.Arguments(), async (stdout, token) =>
            {
                int n;
                while (filled < frames.Length && (n = await stdout.ReadAsync(frames.AsMemory(filled), token)) > 0)
                {
                    filled += n;
                }
            }, timeout, "Decoding the video", cancellationToken);
            return (filled + result.UnreadStdoutBytes, result.StderrTail);
        }
        finally
        {
            _processSlots.Release();
        }
    }
}
