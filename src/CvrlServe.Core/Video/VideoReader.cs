using System.Collections.Concurrent;
using System.Diagnostics;
using FFMpegCore;
using FFMpegCore.Exceptions;

namespace CvrlServe.Core.Video;

/// <summary>
/// The one way the project reads video: media a file, then decode a <see cref="SamplingPlan"/> at a
/// <see cref="FrameGeometry"/> into rgb24 views. Thread-safe; a server holds one instance so the cap on
/// concurrent ffmpeg processes holds across requests.
/// </summary>
public sealed class VideoReader : IDisposable
{
    private readonly VideoReaderOptions _options;
    private readonly SemaphoreSlim _processSlots;
    private readonly FFOptions _ffOptions;
    private readonly ConcurrentDictionary<(string Path, long Bytes, DateTime Modified), MediaInfo> _probes = new();

    public VideoReader(VideoReaderOptions? options = null)
    {
        _options = options ?? new VideoReaderOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxConcurrentProcesses, 1);
        _processSlots = new SemaphoreSlim(_options.MaxConcurrentProcesses, _options.MaxConcurrentProcesses);
        _ffOptions = new FFOptions { BinaryFolder = _options.BinaryFolder ?? "", UseCache = false };
    }

    public VideoReaderOptions Options => _options;

    /// <summary>
    /// Probes <paramref name="path"/> (cached by path, size and modification time) and checks the file
    /// size, duration and frame size against the limits. Audio-only files come back with
    /// <see cref="MediaInfo.HasVideo"/> false; decoding them is an <see cref="UnsupportedMediaException"/>.
    /// </summary>
    public async Task<MediaInfo> GetMediaInfoAsync(string path, VideoLimits? limits = null, CancellationToken cancellationToken = default)
    {
        var effective = _options.Limits.Tighten(limits);
        var file = new FileInfo(path);
        if (!file.Exists)
        {
            throw new VideoNotFoundException(path);
        }

        if (file.Length == 0)
        {
            throw new UnsupportedMediaException($"'{file.Name}' is empty.");
        }

        effective.CheckFile(file.Length);
        var key = (file.FullName, file.Length, file.LastWriteTimeUtc);
        if (!_probes.TryGetValue(key, out var media))
        {
            media = await RunProbeAsync(file, effective.ProcessTimeout, cancellationToken);
            if (_probes.Count >= _options.ProbeCacheCapacity)
            {
                _probes.Clear();
            }

            _probes[key] = media;
        }

        if (media.HasVideo)
        {
            effective.CheckMedia(media);
        }

        return media;
    }

    /// <summary>
    /// Decodes every view of <paramref name="plan"/>. Frames are read in one ffmpeg process (seeking
    /// to each distant run of frames); if that returns fewer bytes than the plan needs, the frames are
    /// read once more by decoding from the start, and if that is short too the video is corrupt.
    /// </summary>
    public async Task<DecodedVideo> DecodeAsync(
        MediaInfo media,
        SamplingPlan plan,
        FrameGeometry geometry,
        VideoLimits? limits = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(media);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(geometry);
        if (!media.HasVideo)
        {
            throw new UnsupportedMediaException($"'{Path.GetFileName(media.Path)}' has no video stream.");
        }

        var effective = _options.Limits.Tighten(limits);
        effective.CheckFile(media.FileBytes);
        effective.CheckMedia(media);

        var clock = Stopwatch.StartNew();
        var command = DecodeCommand.Build(media, plan, geometry, _options.AllowedFormats, seek: true, _options.SeekGapSeconds);
        var crops = geometry.Crops(command.Width, command.Height);
        long viewBytes = plan.Clips.Sum(c => (long)c.Frames.Count) * crops.Sum(b => (long)b.Width * b.Height * 3);
        effective.CheckDecodedBytes(command.ExpectedBytes + viewBytes);
        if (command.ExpectedBytes > Array.MaxLength)
        {
            throw new LimitExceededException(Limit.DecodedBytes, command.ExpectedBytes, Array.MaxLength);
        }

        var frames = new byte[command.ExpectedBytes];
        var (written, stderr) = await RunDecodeAsync(command, frames, effective.ProcessTimeout, cancellationToken);
        int processes = 1;
        bool fallback = false;
        if (written != command.ExpectedBytes && command.Inputs.Any(i => i.Options.StartsWith("-ss", StringComparison.Ordinal)))
        {
            // ffmpeg can exit 0 yet return too little after an input-side seek (engineering notes).
            var fromStart = DecodeCommand.Build(media, plan, geometry, _options.AllowedFormats, seek: false);
            (written, stderr) = await RunDecodeAsync(fromStart, frames, effective.ProcessTimeout, cancellationToken);
            processes++;
            fallback = true;
        }

        if (written != command.ExpectedBytes)
        {
            long frameBytes = (long)command.Width * command.Height * 3;
            throw new CorruptVideoException(
                $"ffmpeg returned {written / frameBytes} of the {command.Frames} frames asked of '{Path.GetFileName(media.Path)}' " +
                $"({written} bytes, expected {command.ExpectedBytes}): the video is truncated or corrupt.", stderr);
        }

        var views = CutViews(plan, command, crops, frames);
        return new DecodedVideo(media, views, new DecodeStats(processes, fallback, command.Frames, clock.Elapsed));
    }

    public void Dispose() => _processSlots.Dispose();

    private static DecodedClip[] CutViews(SamplingPlan plan, DecodeCommand command, IReadOnlyList<CropBox> crops, byte[] frames)
    {
        int[] distinct = plan.DistinctFrames();
        int frameBytes = command.Width * command.Height * 3;
        var views = new DecodedClip[plan.Clips.Count * crops.Count];
        for (int c = 0; c < plan.Clips.Count; c++)
        {
            var clip = plan.Clips[c];
            var start = plan.Grid.TimeOf(clip.Frames[0]);
            var end = plan.Grid.TimeOf(clip.Frames[^1] + 1);
            for (int k = 0; k < crops.Count; k++)
            {
                var box = crops[k];
                int rowBytes = box.Width * 3;
                var rgb = new byte[clip.Frames.Count * box.Height * rowBytes];
                for (int t = 0; t < clip.Frames.Count; t++)
                {
                    int source = Array.BinarySearch(distinct, clip.Frames[t]) * frameBytes;
                    for (int y = 0; y < box.Height; y++)
                    {
                        Buffer.BlockCopy(frames, source + ((box.Y + y) * command.Width + box.X) * 3, rgb, (t * box.Height + y) * rowBytes, rowBytes);
                    }
                }

                views[c * crops.Count + k] = new DecodedClip(c, k, clip.Frames, start, end, box.Width, box.Height, rgb);
            }
        }

        return views;
    }

    private async Task<MediaInfo> RunProbeAsync(FileInfo file, TimeSpan timeout, CancellationToken cancellationToken)
    {
        string safety = $"-protocol_whitelist file,pipe -format_whitelist {string.Join(',', _options.AllowedFormats)}";
        IMediaAnalysis analysis;
        await _processSlots.WaitAsync(cancellationToken);
        try
        {
            using var deadline = new CancellationTokenSource(timeout);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
            try
            {
                analysis = await FFProbe.AnalyseAsync(file.FullName, _ffOptions, safety, linked.Token);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new DeadlineExceededException($"Probing '{file.Name}'", timeout);
            }
            catch (FFProbeProcessException e)
            {
                throw FfmpegErrors.ClassifyProbeFailure(file.Name, await ReadHeadAsync(file, cancellationToken), e.StandardError, e);
            }
            catch (FFMpegException e)
            {
                throw new UnsupportedMediaException($"'{file.Name}' could not be probed.", null, e.Message, e);
            }
            catch (System.Text.Json.JsonException e)
            {
                throw new UnsupportedMediaException($"'{file.Name}' could not be probed: ffprobe's output was unreadable.", null, null, e);
            }
        }
        finally
        {
            _processSlots.Release();
        }

        return MediaInfoParser.Parse(analysis, file.FullName, file.Length);
    }

    private static async Task<byte[]> ReadHeadAsync(FileInfo file, CancellationToken cancellationToken)
    {
        var head = new byte[256];
        await using var stream = file.OpenRead();
        int read = await stream.ReadAtLeastAsync(head, head.Length, throwOnEndOfStream: false, cancellationToken);
        return head[..read];
    }

    private async Task<(long Written, IReadOnlyList<string> Stderr)> RunDecodeAsync(
        DecodeCommand command, byte[] frames, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var sink = new RawFrameSink(frames);
        await _processSlots.WaitAsync(cancellationToken);
        try
        {
            using var deadline = new CancellationTokenSource(timeout);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
            FFMpegResult result;
            try
            {
                result = await command.ToProcessor(sink)
                    .CancellableThrough(linked.Token, TimeSpan.Zero)
                    .ProcessAsynchronously(false, _ffOptions, linked.Token);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new DeadlineExceededException("Decoding", timeout);
            }

            if (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new DeadlineExceededException("Decoding", timeout);
            }

            cancellationToken.ThrowIfCancellationRequested();
            return (sink.BytesWritten, FfmpegErrors.Tail(result.StandardError));
        }
        finally
        {
            _processSlots.Release();
        }
    }
}
