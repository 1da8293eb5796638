namespace CvrlServe.Core.Datasets;

/// <summary>Finds video files under a folder (recursively), by extension, in a stable order.</summary>
public static class VideoFiles
{
    public static IReadOnlySet<string> Extensions { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".ts", ".mpg", ".mpeg", ".wmv", ".asf", ".ogv", ".3gp", ".gif",
    };

    public static bool IsVideo(string path) => Extensions.Contains(Path.GetExtension(path));

    /// <summary>Every video under <paramref name="root"/>, ordinal path order so runs are reproducible.</summary>
    public static IReadOnlyList<string> Find(string root)
    {
        if (!Directory.Exists(root))
        {
            throw new DirectoryNotFoundException($"No folder at '{root}'.");
        }

        return Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .Where(IsVideo)
            .Select(Path.GetFullPath)
            .Order(StringComparer.Ordinal)
            .ToArray();
    }
}
