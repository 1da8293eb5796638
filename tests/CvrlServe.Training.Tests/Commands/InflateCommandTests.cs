using CvrlServe.Core.Inference;
using CvrlServe.Training.Checkpoints;
using CvrlServe.Training.Modules;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace CvrlServe.Training.Tests.Commands;

public sealed class InflateCommandTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("cvrl-inflate-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string SingleFrameCheckpoint(int seed, int frames = 1)
    {
        random.manual_seed(seed);
        using var encoder = new R3dEncoder(R3dArchitecture.R3d18, 0.25);
        string folder = Path.Combine(_folder, $"frames-{frames}");
        EncoderCheckpoint.Save(folder, encoder, new CheckpointInfo("r3d18", 0.25, "pretrained", 10, PretrainingClip: new ClipGeometry(frames, 1, 32, ShortSide: 40)));
        return folder;
    }

    [Fact]
    public void Inflate_SingleFrameEncoder_RepeatedFrameClipGivesTheSingleFrameOutput()
    {
        string source = SingleFrameCheckpoint(7);
        string inflated = Path.Combine(_folder, "inflated");
        var (code, _, stderr) = ModelCommandsTests.Run("inflate", "--checkpoint", source, "--out", inflated, "--frames", "8", "--stride", "2");
        Assert.True(code == 0, stderr);

        var (original, _) = EncoderCheckpoint.Load(source);
        var (video, info) = EncoderCheckpoint.Load(inflated);
        using (original)
        using (video)
        {
            Assert.Equal(("pretrained-inflated", 8, 2), (info.Kind, info.PretrainingClip!.Frames, info.PretrainingClip.Stride));

            // Every temporal tap but the centre one is zero; the centre is the original kernel.
            var before = original.modules().OfType<Conv3d>().ToArray();
            var after = video.modules().OfType<Conv3d>().ToArray();
            Assert.Contains(after, c => c.weight!.shape[2] == 3);
            for (int i = 0; i < after.Length; i++)
            {
                var weight = after[i].weight!;
                long centre = weight.shape[2] / 2;
                for (long t = 0; t < weight.shape[2]; t++)
                {
                    using var tap = weight[TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Single(t)];
                    using var was = before[i].weight![TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Single(t)];
                    Assert.Equal(0f, (t == centre ? tap - was : tap).abs().max().item<float>());
                }
            }

            // Zero-padded temporal convs with only the centre tap: each output frame depends on its own
            // input frame, so T copies of a frame give the single-frame features in every frame, and the
            // global average over time is the single-frame output.
            original.eval();
            video.eval();
            using var noGrad = no_grad();
            using var frame = rand([2, 3, 1, 32, 32]);
            using var clip = frame.repeat(1, 1, 8, 1, 1);
            using var expected = original.forward(frame);
            using var actual = video.forward(clip);
            float scale = expected.abs().max().item<float>();
            Assert.True((actual - expected).abs().max().item<float>() <= 1e-4f * Math.Max(1f, scale), "inflated output differs on a repeated frame");

            // The original, fed the same clip, does use its neighbouring taps: the inflation changed something.
            using var uninflated = original.forward(clip);
            Assert.True((uninflated - expected).abs().max().item<float>() > 1e-3f * scale);
        }
    }

    [Fact]
    public void Inflate_EncoderTrainedOnVideoClips_Refused()
    {
        string source = SingleFrameCheckpoint(8, frames: 4);
        var (code, _, stderr) = ModelCommandsTests.Run("inflate", "--checkpoint", source, "--out", Path.Combine(_folder, "out"), "--frames", "8", "--stride", "2");
        Assert.Equal(2, code);
        Assert.Contains("single frames", stderr, StringComparison.Ordinal);
        (code, _, stderr) = ModelCommandsTests.Run("inflate", "--checkpoint", source, "--out", Path.Combine(_folder, "out"));
        Assert.Equal(2, code);
        Assert.Contains("--frames and --stride are required", stderr, StringComparison.Ordinal);
    }
}
