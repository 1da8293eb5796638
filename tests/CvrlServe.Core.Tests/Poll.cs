using System.Diagnostics;

namespace CvrlServe.Core.Tests;

/// <summary>Waits for a state no event announces (a child process gone, a request queued): polls the condition.</summary>
internal static class Poll
{
    /// <summary>Returns once <paramref name="condition"/> holds, or after <paramref name="limit"/>: the caller asserts what it needs.</summary>
    public static async Task UntilAsync(Func<bool> condition, TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        while (!condition() && clock.Elapsed < limit)
        {
            await Task.Delay(10);
        }
    }
}
