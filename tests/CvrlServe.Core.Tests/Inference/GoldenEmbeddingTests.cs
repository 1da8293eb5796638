using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using CvrlServe.Core.Inference;
using Xunit.Abstractions;

namespace CvrlServe.Core.Tests.Inference;

/// <summary>
/// Golden embeddings of the committed tiny encoder: <see cref="EncoderSession.Run"/> on a formula input
/// against values computed without ONNX Runtime or any of our code, by tools/peers/onnx_torch_eval.py
/// (the ONNX graph evaluated node by node with PyTorch's functional ops, in float64). The golden file
/// records the model's SHA-256, so a changed model fails on that instead of on stale values; regenerate
/// with the command at the top of the script.
/// </summary>
/// <remarks>
/// Tolerance, per value: |actual - expected| ≤ 1e-4 + 1e-3·|expected| (both read from the golden file).
/// ONNX Runtime computes in float32 (ε ≈ 6e-8) through 20 convolutions of up to 735-term sums in an
/// order MLAS chooses per CPU; the embeddings are at most ~0.46. Observed on x64 (MLAS, 1 thread): max
/// |diff| 1.5e-7, max relative 7e-6 (on a value of 3e-5); PyTorch's own float32 run differs from the
/// float64 reference by 1.6e-7. The bound leaves ~700× that for other CPUs' kernels and thread counts,
/// yet faults stay far outside it: in the reference, swapping H and W, reversing time, shifting one pixel
/// or swapping RGB moves 110 of the 128 values by up to 0.05-0.11, and raising ONE of the 49,152 input
/// values by 1/16 already moves two values past the bound. The absolute term covers the 18 channels
/// whose post-ReLU average is exactly zero.
/// </remarks>
public sealed class GoldenEmbeddingTests(ITestOutputHelper output)
{
    /// <summary>The input formula, as the script writes it into the golden file (checked verbatim).</summary>
    private const string Formula = "x[n,c,t,h,w] = ((n*7 + c*5 + t*3 + h*2 + w) % 17) / 16.0";

    private static string GoldenPath => Path.Combine(AppContext.BaseDirectory, "Inference", "Golden", "tiny-seed1.golden.json");

    [Fact]
    public void GoldenFile_RecordsTheCommittedModelsSha256() => AssertGoldenIsForTheCommittedModel(Golden.Load(GoldenPath));

    [Fact]
    public void Run_FormulaInput_MatchesTheTorchReferenceWithinTolerance()
    {
        Golden golden = Golden.Load(GoldenPath);
        AssertGoldenIsForTheCommittedModel(golden);
        int count = golden.InputShape[0];
        int[] clipShape = golden.InputShape[1..];

        float[] actual = RunTiny(FormulaInput(golden.InputShape), count, clipShape);

        Assert.Equal(golden.Values.Length, actual.Length);
        var failures = new List<string>();
        double maxAbs = 0, maxRel = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double expected = golden.Values[i];
            double diff = Math.Abs(actual[i] - expected);
            maxAbs = Math.Max(maxAbs, diff);
            if (expected != 0)
            {
                maxRel = Math.Max(maxRel, diff / Math.Abs(expected));
            }

            if (diff > golden.AbsoluteTolerance + (golden.RelativeTolerance * Math.Abs(expected)))
            {
                failures.Add(string.Create(CultureInfo.InvariantCulture, $"[{i / golden.Dimension},{i % golden.Dimension}] expected {expected:R}, got {actual[i]:R} (|diff| {diff:E2})"));
            }
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{actual.Length} values: max |diff| {maxAbs:E3}, max relative diff (nonzero expected) {maxRel:E3}"));
        Assert.True(failures.Count == 0,
            string.Create(CultureInfo.InvariantCulture, $"{failures.Count} of {actual.Length} values outside {golden.AbsoluteTolerance} + {golden.RelativeTolerance}·|expected|:\n")
            + string.Join('\n', failures.Take(20)));
    }

    [Fact]
    public void Run_FirstSampleAlone_EqualsRowZeroOfTheBatch()
    {
        Golden golden = Golden.Load(GoldenPath);
        AssertGoldenIsForTheCommittedModel(golden);
        int[] clipShape = golden.InputShape[1..];
        float[] input = FormulaInput(golden.InputShape);
        int dimension = golden.Dimension;

        float[] batch = RunTiny(input, golden.InputShape[0], clipShape);
        float[] alone = RunTiny(input.AsSpan(0, input.Length / golden.InputShape[0]).ToArray(), 1, clipShape);

        Assert.True(golden.InputShape[0] >= 2, "batch independence needs a batch of at least two");
        for (int d = 0; d < dimension; d++)
        {
            AssertClose(batch[d], alone[d], golden, $"batch of {golden.InputShape[0]} row 0 vs batch of 1, [{d}]");
            AssertClose(golden.Values[d], alone[d], golden, $"golden row 0 vs batch of 1, [{d}]");
        }
    }

    /// <summary>The formula input in NCTHW order; every value is k/16, exact in float32.</summary>
    private static float[] FormulaInput(int[] shape)
    {
        var values = new float[shape.Aggregate(1, (a, b) => a * b)];
        int i = 0;
        for (int n = 0; n < shape[0]; n++)
        {
            for (int c = 0; c < shape[1]; c++)
            {
                for (int t = 0; t < shape[2]; t++)
                {
                    for (int h = 0; h < shape[3]; h++)
                    {
                        for (int w = 0; w < shape[4]; w++)
                        {
                            values[i++] = (((n * 7) + (c * 5) + (t * 3) + (h * 2) + w) % 17) / 16.0f;
                        }
                    }
                }
            }
        }

        return values;
    }

    private static void AssertGoldenIsForTheCommittedModel(Golden golden)
    {
        string model = Path.Combine(TinyModels.Seed1, EncoderManifest.ModelFileName);
        string actual = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(model)));
        Assert.True(string.Equals(golden.OnnxSha256, actual, StringComparison.OrdinalIgnoreCase),
            $"{model} has SHA-256 {actual}, but {GoldenPath} was computed for {golden.OnnxSha256}: the model changed, "
            + "so regenerate the golden file with tools/peers/onnx_torch_eval.py (see its header).");
        Assert.Equal(Formula, golden.Formula);
    }

    private static float[] RunTiny(float[] input, int count, int[] clipShape)
    {
        using var session = EncoderSession.Load(TinyModels.Seed1, new EncoderSessionOptions { Provider = ProviderPreference.Cpu, IntraOpThreads = 1 });
        Assert.Equal(ExecutionProviders.Cpu, session.Provider);
        var result = new float[count * session.Dimension];
        session.Run(input, count, clipShape, result);
        return result;
    }

    private static void AssertClose(double expected, double actual, Golden golden, string what)
    {
        double diff = Math.Abs(actual - expected);
        Assert.True(diff <= golden.AbsoluteTolerance + (golden.RelativeTolerance * Math.Abs(expected)),
            string.Create(CultureInfo.InvariantCulture, $"{what}: expected {expected:R}, got {actual:R} (|diff| {diff:E2})"));
    }

    private sealed record Golden(string OnnxSha256, string Formula, int[] InputShape, int Dimension, double AbsoluteTolerance, double RelativeTolerance, double[] Values)
    {
        public static Golden Load(string path)
        {
            using JsonDocument document = JsonDocument.Parse(File.ReadAllText(path));
            JsonElement root = document.RootElement;
            JsonElement input = root.GetProperty("input");
            JsonElement tolerance = root.GetProperty("tolerance");
            int[] outputShape = [.. root.GetProperty("output").GetProperty("shape").EnumerateArray().Select(e => e.GetInt32())];
            double[][] rows = [.. root.GetProperty("values").EnumerateArray().Select(row => row.EnumerateArray().Select(v => v.GetDouble()).ToArray())];
            if (outputShape.Length != 2 || rows.Length != outputShape[0] || rows.Any(r => r.Length != outputShape[1]))
            {
                throw new InvalidDataException($"{path}: values do not have the recorded output shape [{string.Join(',', outputShape)}].");
            }

            return new Golden(
                root.GetProperty("onnxSha256").GetString()!,
                input.GetProperty("formula").GetString()!,
                [.. input.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32())],
                outputShape[1],
                tolerance.GetProperty("absolute").GetDouble(),
                tolerance.GetProperty("relative").GetDouble(),
                [.. rows.SelectMany(r => r)]);
        }
    }
}
