using System.Runtime.CompilerServices;

namespace CvrlServe.Core.Tests;

/// <summary>
/// Gives this test process its own temporary folder (TMPDIR), so tests that check for leftover files
/// (ffmpeg pipe sockets, staging folders) see only what this process made, not what the other test
/// assemblies running beside it make.
/// </summary>
internal static class TestTempFolder
{
    [ModuleInitializer]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Usage", "CA2255", Justification = "Test-process setup before any test runs.")]
    internal static void Isolate()
    {
        string folder = Directory.CreateTempSubdirectory("cvrl-core-tests-").FullName;
        Environment.SetEnvironmentVariable("TMPDIR", folder);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(folder, recursive: true);
            }
            catch (IOException)
            {
                // Best effort at exit.
            }
        };
    }
}
