namespace CvrlServe.Core.Video;

/// <summary>
/// Per-channel normalization applied after scaling pixels to [0,1]: (x − mean) / std. CVRL uses none
/// (values stay in [0,1]); other encoders declare theirs in their manifest.
/// </summary>
public sealed record Normalization(float[] Mean, float[] Std)
{
    /// <summary>Values stay in [0,1]: CVRL's value range.</summary>
    public static Normalization None { get; } = new([0f, 0f, 0f], [1f, 1f, 1f]);

    public void Validate()
    {
        if (Mean.Length != 3 || Std.Length != 3 || Std.Any(s => !(s > 0)))
        {
            throw new ArgumentException("Normalization needs three means and three positive standard deviations.");
        }
    }
}

/// <summary>
/// Turns decoded rgb24 views into float32 tensors laid out [C, T, H, W] (one clip) or [N, C, T, H, W]
/// (a batch), pixel/255 then normalized. The only conversion from frames to model input in the project.
/// </summary>
public static class ClipTensor
{
    /// <summary>Elements of one clip's tensor.</summary>
    public static int Length(DecodedClip clip)
    {
        ArgumentNullException.ThrowIfNull(clip);
        return 3 * clip.Frames.Count * clip.Height * clip.Width;
    }

    /// <summary>One clip as a new [C, T, H, W] array.</summary>
    public static float[] ToArray(DecodedClip clip, Normalization? normalization = null)
    {
        var tensor = new float[Length(clip)];
        Write(clip, tensor, normalization);
        return tensor;
    }

    /// <summary>Clips of equal shape as one new [N, C, T, H, W] array.</summary>
    public static float[] Batch(IReadOnlyList<DecodedClip> clips, Normalization? normalization = null)
    {
        ArgumentNullException.ThrowIfNull(clips);
        if (clips.Count == 0)
        {
            return [];
        }

        var first = clips[0];
        int each = Length(first);
        var batch = new float[(long)each * clips.Count];
        for (int n = 0; n < clips.Count; n++)
        {
            var clip = clips[n];
            if (clip.Frames.Count != first.Frames.Count || clip.Width != first.Width || clip.Height != first.Height)
            {
                throw new ArgumentException($"Clip {n} is {clip.Frames.Count}×{clip.Height}×{clip.Width}, the batch is {first.Frames.Count}×{first.Height}×{first.Width}.", nameof(clips));
            }

            Write(clip, batch.AsSpan(n * each, each), normalization);
        }

        return batch;
    }

    /// <summary>Writes one clip into <paramref name="destination"/> ([C, T, H, W], exactly <see cref="Length"/> long).</summary>
    public static void Write(DecodedClip clip, Span<float> destination, Normalization? normalization = null)
    {
        ArgumentNullException.ThrowIfNull(clip);
        var norm = normalization ?? Normalization.None;
        norm.Validate();
        int plane = clip.Frames.Count * clip.Height * clip.Width;
        if (destination.Length != 3 * plane)
        {
            throw new ArgumentException($"The destination holds {destination.Length} values; the clip needs {3 * plane}.", nameof(destination));
        }

        ReadOnlySpan<byte> rgb = clip.Rgb;
        for (int c = 0; c < 3; c++)
        {
            // (x/255 − mean)/std as one multiply-add per value.
            float scale = 1f / (255f * norm.Std[c]);
            float shift = -norm.Mean[c] / norm.Std[c];
            var channel = destination.Slice(c * plane, plane);
            for (int i = 0; i < plane; i++)
            {
                channel[i] = rgb[i * 3 + c] * scale + shift;
            }
        }
    }
}
