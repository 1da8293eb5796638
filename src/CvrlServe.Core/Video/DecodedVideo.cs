namespace CvrlServe.Core.Video;

/// <summary>
/// One view: the frames of one clip under one crop, rgb24 laid out [T, H, W, 3].
/// </summary>
/// <param name="Clip">Index of the clip in the plan.</param>
/// <param name="Crop">Index of the crop (0 unless three crops were asked for).</param>
/// <param name="Frames">Grid indices of the frames.</param>
/// <param name="Start">Time of the first frame, from the video's start.</param>
/// <param name="End">Time the last frame stops showing.</param>
public sealed record DecodedClip(int Clip, int Crop, IReadOnlyList<int> Frames, TimeSpan Start, TimeSpan End, int Width, int Height, byte[] Rgb)
{
    /// <summary>The rgb24 bytes of frame <paramref name="t"/>.</summary>
    public ReadOnlySpan<byte> Frame(int t) => Rgb.AsSpan(t * Width * Height * 3, Width * Height * 3);
}

/// <summary>How a decode went: processes run, whether the fallback was needed, frames filled at the tail, elapsed time.</summary>
public sealed record DecodeStats(int Processes, bool UsedFallback, int FramesDecoded, int FilledTailFrames, TimeSpan Elapsed);

/// <summary>All views decoded from one video, clip-major then crop.</summary>
public sealed record DecodedVideo(MediaInfo Probe, IReadOnlyList<DecodedClip> Views, DecodeStats Stats);
