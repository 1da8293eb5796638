using System.Security.Cryptography;
using System.Text;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.Inference;

public sealed class EncoderManifestIdentityTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("cvrl-manifest-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static string Sha256Hex(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    [Fact]
    public void ModelId_CommittedTinyModel_IsTheHashOfItsOnnxShaAndItsViewAsWrittenInEncoderJson()
    {
        var manifest = EncoderManifest.Load(TinyModels.Seed1);

        // Spelled out from tiny-seed1/encoder.json: 4 frames at stride 2, own frame rate, 40 → 32 centre crop, [0, 1] values.
        const string Preprocessing = """{"frames":4,"stride":2,"targetFps":null,"shortSide":40,"cropSize":32,"cropMode":"center","interpolation":"bilinear","valueMin":0,"valueMax":1,"mean":[0,0,0],"std":[1,1,1]}""";
        Assert.Equal(Preprocessing, manifest.PreprocessingJson());
        Assert.Equal(Sha256Hex($"{manifest.EncoderSha256}\n{Preprocessing}"), manifest.ModelId);
        Assert.Matches("^[0-9a-f]{64}$", manifest.ModelId);
    }

    [Fact]
    public void ModelId_FractionalValuesAndAFrameRate_ShortestInvariantNumbers()
    {
        var manifest = EncoderManifest.Load(TinyModels.Seed1) with
        {
            EncoderSha256 = new string('A', 64),
            View = new ViewSpec(16, 1, 128, 112, CropMode.ThreeAlongLongSide, Clips: 10, TargetFps: 29.97, ResizeInterpolation.Area),
            Values = new ValueSpec([0.43216f, 0.394666f, -0f], [0.22803f, 0.22145f, 0.216989f], Min: -1f, Max: 0.5f),
        };

        const string Preprocessing = """{"frames":16,"stride":1,"targetFps":29.97,"shortSide":128,"cropSize":112,"cropMode":"threeAlongLongSide","interpolation":"area","valueMin":-1,"valueMax":0.5,"mean":[0.43216,0.394666,0],"std":[0.22803,0.22145,0.216989]}""";
        Assert.Equal(Preprocessing, manifest.PreprocessingJson());
        Assert.Equal(Sha256Hex($"{new string('a', 64)}\n{Preprocessing}"), manifest.ModelId); // the hash is lower-cased first
    }

    [Fact]
    public void ModelId_ChangesWithWhatTheEncoderSees_NotWithNamesClipCountOrRecords()
    {
        var manifest = EncoderManifest.Load(TinyModels.Seed1);
        var view = manifest.View;
        EncoderManifest[] otherSpaces =
        [
            manifest with { View = view with { Frames = 8 } },
            manifest with { View = view with { Stride = 1 } },
            manifest with { View = view with { TargetFps = 15 } },
            manifest with { View = view with { ShortSide = 48 } },
            manifest with { View = view with { CropSize = 24 } },
            manifest with { View = view with { CropMode = CropMode.ThreeAlongLongSide } },
            manifest with { View = view with { Interpolation = ResizeInterpolation.Bicubic } },
            manifest with { Values = manifest.Values with { Mean = [0.5f, 0.5f, 0.5f] } },
            manifest with { Values = manifest.Values with { Std = [0.5f, 0.5f, 0.5f] } },
            manifest with { Values = manifest.Values with { Max = 255f } },
            EncoderManifest.Load(TinyModels.Seed2) with { Name = manifest.Name },
        ];
        Assert.Equal(otherSpaces.Length + 1, otherSpaces.Select(m => m.ModelId).Append(manifest.ModelId).Distinct().Count());

        EncoderManifest[] sameSpace =
        [
            manifest with { Name = "renamed-copy" },
            manifest with { View = view with { Clips = 10 } },
            manifest with { Training = new ClipGeometry(8, 2, 64, 80, 12.5) },
            manifest with { Provenance = manifest.Provenance with { Steps = 99 } },
        ];
        Assert.All(sameSpace, m => Assert.Equal(manifest.ModelId, m.ModelId));
    }

    [Fact]
    public void Load_ManifestWithManyProblems_FailsAtLoadListingEveryOne()
    {
        string json = EncoderManifest.Load(TinyModels.Seed1).ToJson()
            .Replace("\"encoderSha256\": \"0ef75a9178f0d9088fa7e1fd6442f5ba3fe753e30a04aaaf93219f7a98152111\"", "\"encoderSha256\": \"not-a-hash\"", StringComparison.Ordinal)
            .Replace("\"frames\": 4", "\"frames\": 100000", StringComparison.Ordinal)
            .Replace("\"stride\": 2", "\"stride\": 2, \"targetFps\": 0", StringComparison.Ordinal)
            .Replace("\"shortSide\": 40", "\"shortSide\": 24", StringComparison.Ordinal)
            .Replace("\"cropMode\": \"center\"", "\"cropMode\": 7", StringComparison.Ordinal)
            .Replace("\"dimension\": 64", "\"dimension\": 100000000", StringComparison.Ordinal)
            .Replace("\"clips\": 2", "\"clips\": 0", StringComparison.Ordinal);
        string model = Path.Combine(_folder, "bad");
        Directory.CreateDirectory(model);
        File.WriteAllText(Path.Combine(model, EncoderManifest.FileName), json);

        var error = Assert.Throws<InvalidDataException>(() => EncoderManifest.Load(model));

        string[] expected = ["encoderSha256", "view.frames", "view.targetFps", "view.cropSize", "view.cropMode", "output.dimension", "view.clips"];
        Assert.All(expected, e => Assert.Contains(e, error.Message, StringComparison.Ordinal));
        Assert.Equal(expected.Length, error.Message.Split('\n').Count(l => l.TrimStart().StartsWith("- ", StringComparison.Ordinal)));

        // The same file refused as a model: the request-facing message stays generic, the list goes to the log detail.
        var load = Assert.Throws<ModelLoadException>(() => EncoderSession.Load(model, new EncoderSessionOptions { Provider = ProviderPreference.Cpu }));
        Assert.DoesNotContain(_folder, load.Message, StringComparison.Ordinal);
        Assert.Contains("view.cropSize", load.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_TrainingRecordOutOfBounds_Refused_SaneOneLoads()
    {
        var manifest = EncoderManifest.Load(TinyModels.Seed1);
        string model = Path.Combine(_folder, "m");
        Directory.CreateDirectory(model);
        File.WriteAllText(Path.Combine(model, EncoderManifest.FileName), (manifest with { Training = new ClipGeometry(600, 2, 96, 80, 500) }).ToJson());
        var error = Assert.Throws<InvalidDataException>(() => EncoderManifest.Load(model));
        string[] expected = ["training.frames", "training.cropSize", "training.targetFps"];
        Assert.All(expected, e => Assert.Contains(e, error.Message, StringComparison.Ordinal));

        File.WriteAllText(Path.Combine(model, EncoderManifest.FileName), (manifest with { Training = new ClipGeometry(8, 2, 64, 80, 12.5) }).ToJson());
        Assert.Equal(new ClipGeometry(8, 2, 64, 80, 12.5), EncoderManifest.Load(model).Training);
    }
}
