using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using CvrlServe.Core.Video;

namespace CvrlServe.Training.Data;

/// <summary>How videos are stored for training: frame grid, short side and a cap on frames kept.</summary>
/// <param name="ShortSide">Frames are resized so the short side is this (the random crop is taken from them).</param>
/// <param name="TargetFps">Resample to this rate first; null keeps each video's own frames.</param>
/// <param name="MaxFrames">Frames kept per video from its start (bounds disk and decode time).</param>
public sealed record CacheOptions(int ShortSide, double? TargetFps = null, int MaxFrames = 300);

/// <summary>
/// One video decoded once at training resolution: every frame of its grid (up to a cap) as rgb24,
/// read back by frame index. The file is a 32-byte header (magic, width, height, frames, rate) and the
/// raw frames, written to a temporary name and renamed, so a crash never leaves a half file in use.
/// Frames come from <see cref="VideoReader"/>: one preprocessing path for training and serving.
/// </summary>
public sealed class CachedVideo
{
    private const int HeaderBytes = 32;
    private static readonly byte[] Magic = "CVRLFC01"u8.ToArray();

    private CachedVideo(string source, string file, int width, int height, int frames, double rate)
    {
        Source = source;
        File = file;
        Width = width;
        Height = height;
        Frames = frames;
        Rate = rate;
    }

    public string Source { get; }

    public string File { get; }

    public int Width { get; }

    public int Height { get; }

    public int Frames { get; }

    public double Rate { get; }

    public int FrameBytes => Width * Height * 3;

    /// <summary>The grid the cached frames are on (for sampling plans).</summary>
    public FrameGrid Grid => new(Rate, Frames, TimeSpan.Zero);

    /// <summary>Opens the cache of <paramref name="video"/>, decoding it first if there is none yet.</summary>
    public static async Task<CachedVideo> OpenOrBuildAsync(VideoReader reader, string video, string cacheFolder, CacheOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(options);
        string file = PathFor(video, cacheFolder, options);
        if (System.IO.File.Exists(file))
        {
            try
            {
                return Open(video, file);
            }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException)
            {
                // A damaged cache file (a disk filled up, a manual edit): decode the video again.
                System.IO.File.Delete(file);
            }
        }

        var media = await reader.GetMediaInfoAsync(video, cancellationToken: cancellationToken);
        var full = media.Grid(options.TargetFps);
        var grid = full with { Count = Math.Min(full.Count, options.MaxFrames) };
        var plan = new SamplingPlan(grid, [new ClipPlan(Enumerable.Range(0, grid.Count).ToArray())]);
        var decoded = await reader.DecodeAsync(media, plan, new FrameGeometry(options.ShortSide), cancellationToken: cancellationToken);
        var view = decoded.Views[0];

        Directory.CreateDirectory(cacheFolder);
        string temporary = $"{file}.{Guid.NewGuid():N}.tmp";
        await using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write))
        {
            var header = new byte[HeaderBytes];
            Magic.CopyTo(header, 0);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), view.Width);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(12), view.Height);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(16), grid.Count);
            BinaryPrimitives.WriteDoubleLittleEndian(header.AsSpan(20), grid.Rate);
            await stream.WriteAsync(header, cancellationToken);
            await stream.WriteAsync(view.Rgb, cancellationToken);
        }

        System.IO.File.Move(temporary, file, overwrite: true);
        return Open(video, file);
    }

    /// <summary>The frames at <paramref name="indices"/>, laid out [T, H, W, 3].</summary>
    public byte[] ReadFrames(IReadOnlyList<int> indices)
    {
        ArgumentNullException.ThrowIfNull(indices);
        var rgb = new byte[indices.Count * FrameBytes];
        using var handle = System.IO.File.OpenHandle(File);
        for (int t = 0; t < indices.Count; t++)
        {
            int index = indices[t];
            if (index < 0 || index >= Frames)
            {
                throw new ArgumentOutOfRangeException(nameof(indices), index, $"The cache of '{Source}' holds {Frames} frames.");
            }

            int read = RandomAccess.Read(handle, rgb.AsSpan(t * FrameBytes, FrameBytes), HeaderBytes + (long)index * FrameBytes);
            if (read != FrameBytes)
            {
                throw new InvalidDataException($"The cache file '{File}' is truncated.");
            }
        }

        return rgb;
    }

    private static CachedVideo Open(string source, string file)
    {
        var header = new byte[HeaderBytes];
        using (var stream = System.IO.File.OpenRead(file))
        {
            stream.ReadExactly(header);
        }

        if (!header.AsSpan(0, 8).SequenceEqual(Magic))
        {
            throw new InvalidDataException($"'{file}' is not a frame cache.");
        }

        var video = new CachedVideo(source, file,
            BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8)),
            BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(12)),
            BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(16)),
            BinaryPrimitives.ReadDoubleLittleEndian(header.AsSpan(20)));
        long expected = HeaderBytes + (long)video.Frames * video.FrameBytes;
        if (new FileInfo(file).Length != expected)
        {
            throw new InvalidDataException($"The cache file '{file}' is {new FileInfo(file).Length} bytes, expected {expected}.");
        }

        return video;
    }

    /// <summary>Where the cache of <paramref name="video"/> lives (whether or not it exists yet).</summary>
    internal static string PathFor(string video, string cacheFolder, CacheOptions options) =>
        Path.Combine(cacheFolder, Key(new FileInfo(video), options) + ".frames");

    /// <summary>The cache key: the source's identity (path, size, modification time) and the cache options.</summary>
    private static string Key(FileInfo source, CacheOptions options)
    {
        string text = string.Create(CultureInfo.InvariantCulture,
            $"{source.FullName}|{source.Length}|{source.LastWriteTimeUtc.Ticks}|{options.ShortSide}|{options.TargetFps}|{options.MaxFrames}");
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..24];
    }
}
