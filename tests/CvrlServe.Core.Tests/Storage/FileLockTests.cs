using System.Diagnostics;
using System.Globalization;
using CvrlServe.Core.Storage;

namespace CvrlServe.Core.Tests.Storage;

public sealed class FileLockTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("cvrl-filelock-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task AcquireAsync_TwoLocksOnOneFile_ReadModifyWritesNeverInterleave()
    {
        // Two instances share no semaphore, as two processes would not: only the file lock orders them.
        string path = Path.Combine(_folder, "counter.lock");
        string counter = Path.Combine(_folder, "counter");
        File.WriteAllText(counter, "0");
        var locks = new[] { new FileLock(path), new FileLock(path) };

        await Task.WhenAll(Enumerable.Range(0, 40).Select(i => Task.Run(async () =>
        {
            using (await locks[i % 2].AcquireAsync())
            {
                int value = int.Parse(await File.ReadAllTextAsync(counter), CultureInfo.InvariantCulture);
                await Task.Yield();
                await File.WriteAllTextAsync(counter, (value + 1).ToString(CultureInfo.InvariantCulture));
            }
        })));

        Assert.Equal("40", File.ReadAllText(counter));
    }

    [Fact]
    public async Task AcquireAsync_HeldByAnotherProcess_BusyUntilItLetsGo()
    {
        string path = Path.Combine(_folder, "sub", "x.lock");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        // flock(1) takes the same flock(2) lock .NET takes for FileShare.None, and holds it until stdin closes.
        var start = new ProcessStartInfo("flock") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string argument in new[] { "-x", path, "sh", "-c", "echo held; read line" })
        {
            start.ArgumentList.Add(argument);
        }

        using var holder = Process.Start(start)!;
        try
        {
            Assert.Equal("held", await holder.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(20)));

            var error = await Assert.ThrowsAsync<OverloadedException>(() => new FileLock(path) { Timeout = TimeSpan.FromMilliseconds(300) }.AcquireAsync());
            Assert.Contains(path, error.Detail, StringComparison.Ordinal);
            Assert.DoesNotContain(path, error.Message, StringComparison.Ordinal);

            holder.StandardInput.Close();
            await holder.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(20));
            using (await new FileLock(path).AcquireAsync())
            {
                Assert.True(File.Exists(path));
            }
        }
        finally
        {
            if (!holder.HasExited)
            {
                holder.Kill();
            }
        }
    }

    [Fact]
    public async Task AcquireAsync_FolderMissing_CreatedAndTheLockReusable()
    {
        var fileLock = new FileLock(Path.Combine(_folder, "a", "b", ".lock"));

        using (await fileLock.AcquireAsync())
        {
            Assert.True(File.Exists(fileLock.Path));
        }

        var again = await fileLock.AcquireAsync();
        again.Dispose();
        again.Dispose(); // a second release is a no-op, not a second semaphore release
        using (await fileLock.AcquireAsync().WaitAsync(TimeSpan.FromSeconds(20)))
        {
        }
    }
}
