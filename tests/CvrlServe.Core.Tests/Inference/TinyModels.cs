namespace CvrlServe.Core.Tests.Inference;

/// <summary>
/// Two real exported encoders committed under Models/ (1.3 MB each): <c>cvrl init --arch r3d18 --width 0.125
/// --seed 1|2 --frames 4 --stride 2 --short-side 40 --crop 32 --clips 2</c>. A Training test checks they
/// are exactly what that command makes.
/// </summary>
internal static class TinyModels
{
    public static string Seed1 => Path.Combine(AppContext.BaseDirectory, "Models", "tiny-seed1");

    public static string Seed2 => Path.Combine(AppContext.BaseDirectory, "Models", "tiny-seed2");

    /// <summary>A models folder of copies, for tests that change or break models.</summary>
    public static string CopyInto(string modelsFolder, string source, string name)
    {
        string target = Path.Combine(modelsFolder, name);
        Directory.CreateDirectory(target);
        foreach (string file in Directory.GetFiles(source))
        {
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)), overwrite: true);
        }

        return target;
    }

    public static float[] RandomClips(int count, int[] shape, int seed)
    {
        var random = new Random(seed);
        var values = new float[count * shape.Aggregate(1, (a, b) => a * b)];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = (float)random.NextDouble();
        }

        return values;
    }
}
