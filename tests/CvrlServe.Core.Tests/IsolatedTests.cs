namespace CvrlServe.Core.Tests;

/// <summary>
/// Tests that run ffmpeg heavily, or count processes, temporary files or this process's memory: they run
/// after every parallel collection, with nothing else beside them, so neither they nor the "videos"
/// collection (whose safety tests count this process's ffmpeg children) see the other's processes.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class IsolatedTests
{
    public const string Name = "isolated (nothing runs beside it)";
}
