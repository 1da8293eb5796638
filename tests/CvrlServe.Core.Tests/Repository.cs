namespace CvrlServe.Core.Tests;

/// <summary>The repository the tests were built from.</summary>
internal static class Repository
{
    /// <summary>The folder holding CvrlServe.sln, above the test assembly.</summary>
    public static string Root { get; } = Find();

    private static string Find()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "CvrlServe.sln")))
            {
                return folder.FullName;
            }
        }

        throw new InvalidOperationException($"No CvrlServe.sln above {AppContext.BaseDirectory}.");
    }
}
