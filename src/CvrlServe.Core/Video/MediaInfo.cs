namespace CvrlServe.Core.Video;

/// <summary>Where <see cref="MediaInfo.FrameCount"/> came from.</summary>
public enum FrameCountSource
{
    /// <summary>The container states the number of frames (e.g. mp4 <c>nb_frames</c>).</summary>
    Container,

    /// <summary>
    /// Estimated as duration × frame rate: mkv/webm and many streams state no count, and a stated count
    /// that disagrees with duration × rate is not believed.
    /// </summary>
    EstimatedFromDuration,
}

/// <summary>What ffprobe says about a file, reduced to what sampling, decoding and limits need.</summary>
/// <param name="Path">The probed file.</param>
/// <param name="FileBytes">Size on disk.</param>
/// <param name="ContainerFormat">ffprobe's demuxer name, e.g. <c>mov,mp4,m4a,3gp,3g2,mj2</c>.</param>
/// <param name="HasVideo">False for audio-only files; every other video field is then zero or empty.</param>
/// <param name="Codec">Video codec name, e.g. <c>h264</c>.</param>
/// <param name="PixelFormat">Stored pixel format, e.g. <c>yuv420p</c>.</param>
/// <param name="Width">Display width: after rotation, as ffmpeg delivers frames.</param>
/// <param name="Height">Display height: after rotation.</param>
/// <param name="Rotation">Rotation metadata in degrees (0, 90, 180, 270); ffmpeg applies it while decoding.</param>
/// <param name="StartTime">Timestamp of the first video frame; frame-grid times are relative to it.</param>
/// <param name="ContainerStartTime">The container's start (the earliest stream); ffmpeg's <c>-ss</c> counts from it.</param>
/// <param name="Duration">Duration of the video stream (the container's when the stream has none).</param>
/// <param name="FrameRate">The frame rate we trust (see <see cref="MediaInfoParser"/>), frames per second.</param>
/// <param name="FrameCount">Frames at <see cref="FrameRate"/>: stated by the container or estimated.</param>
/// <param name="FrameCountSource">Whether <see cref="FrameCount"/> is exact or an estimate.</param>
/// <param name="IsVariableFrameRate">Average and nominal rates disagree by more than 1 %.</param>
public sealed record MediaInfo(
    string Path,
    long FileBytes,
    string ContainerFormat,
    bool HasVideo,
    string Codec,
    string PixelFormat,
    int Width,
    int Height,
    int Rotation,
    TimeSpan StartTime,
    TimeSpan ContainerStartTime,
    TimeSpan Duration,
    double FrameRate,
    long FrameCount,
    FrameCountSource FrameCountSource,
    bool IsVariableFrameRate)
{
    /// <summary>
    /// The frame grid sampling works on. With <paramref name="targetFps"/> null, the video's own frames
    /// (its trusted rate and frame count); otherwise frames resampled to that rate, so videos with
    /// different rates span the same time per clip.
    /// </summary>
    public FrameGrid Grid(double? targetFps = null)
    {
        if (!HasVideo)
        {
            throw new UnsupportedMediaException("The file has no video stream.", detail: $"'{Path}' has no video stream");
        }

        if (targetFps is not { } fps)
        {
            return new FrameGrid(FrameRate, (int)Math.Clamp(FrameCount, 1, MediaInfoParser.MaxFrames), StartTime);
        }

        if (!(fps > 0 && fps <= 1000))
        {
            throw new InvalidRequestException($"The target frame rate must be in (0, 1000] (got {fps}).");
        }

        double count = Math.Floor(Duration.TotalSeconds * fps + 1e-6);
        return new FrameGrid(fps, (int)Math.Clamp(count, 1, MediaInfoParser.MaxFrames), StartTime);
    }
}

/// <summary>
/// A regular grid of frames at <see cref="Rate"/>: slot i spans [i/R, (i+1)/R) after
/// <see cref="StartTime"/> and holds the picture on screen in the middle of it (ffmpeg's <c>fps</c>
/// filter, nearest rounding). For a constant-rate video at its own rate, slot i is exactly its i-th
/// frame; for a variable-rate one, frames are repeated or skipped to fill the grid.
/// </summary>
public sealed record FrameGrid(double Rate, int Count, TimeSpan StartTime)
{
    /// <summary>Presentation time of frame <paramref name="index"/>, relative to the first frame.</summary>
    public TimeSpan TimeOf(int index) => TimeSpan.FromSeconds(index / Rate);
}
