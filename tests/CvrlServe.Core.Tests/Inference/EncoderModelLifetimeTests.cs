using System.Collections.Concurrent;
using CvrlServe.Core.Inference;

namespace CvrlServe.Core.Tests.Inference;

public sealed class EncoderModelLifetimeTests
{
    private static readonly EncoderSessionOptions Options = new() { Provider = ProviderPreference.Cpu, WarmUp = false };
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Retire_WhileManyThreadsAcquireAndRelease_DisposesExactlyOnceAndGrantsNoLeaseAfterwards()
    {
        var unobserved = new ConcurrentQueue<Exception>();
        void Record(object? sender, UnobservedTaskExceptionEventArgs e)
        {
            // Other test classes run meanwhile: keep what comes from inference.
            if (e.Exception.InnerExceptions.Any(x => x is ObjectDisposedException || x.StackTrace?.Contains("CvrlServe.Core.Inference", StringComparison.Ordinal) == true))
            {
                unobserved.Enqueue(e.Exception);
            }
        }

        TaskScheduler.UnobservedTaskException += Record;
        try
        {
            for (int round = 0; round < 8; round++)
            {
                await RaceOnceAsync();
            }

            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            Assert.Empty(unobserved);
        }
        finally
        {
            TaskScheduler.UnobservedTaskException -= Record;
        }
    }

    private static async Task RaceOnceAsync()
    {
        var model = await EncoderModel.LoadAsync(TinyModels.Seed1, Options);
        int retired = 0;
        int grantedAfterRetire = 0;
        int granted = 0;
        using var start = new Barrier(5);
        var workers = Enumerable.Range(0, 4).Select(_ => Task.Factory.StartNew(() =>
        {
            start.SignalAndWait();
            var held = new List<EncoderModel.Lease>();
            for (int i = 0; i < 20_000; i++)
            {
                bool retiredBefore = Volatile.Read(ref retired) == 1;
                if (model.TryAcquire() is { } lease)
                {
                    Interlocked.Increment(ref granted);
                    if (retiredBefore)
                    {
                        Interlocked.Increment(ref grantedAfterRetire);
                    }

                    held.Add(lease);
                }

                // Hold a few leases at a time, released out of order, some twice.
                if (held.Count > 3 || (i % 7 == 0 && held.Count > 0))
                {
                    held[i % held.Count].Dispose();
                    held[i % held.Count].Dispose();
                    held.RemoveAt(i % held.Count);
                }
            }

            held.ForEach(l => l.Dispose());
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();

        start.SignalAndWait();
        SpinWait.SpinUntil(() => Volatile.Read(ref granted) > 500);
        Assert.True(model.Retire());
        Volatile.Write(ref retired, 1);
        Assert.False(model.Retire());
        await Task.WhenAll(workers).WaitAsync(Patience);
        await model.Disposed.WaitAsync(Patience);

        Assert.Equal(0, grantedAfterRetire);
        Assert.Equal(1, model.Disposals);
        Assert.Equal(0, model.Leases);
        Assert.Null(model.TryAcquire());
        Assert.Equal(1, model.Disposals);
    }

    [Fact]
    public async Task DisposeAsync_LeaseHeld_WaitsForTheLastLeaseThenDisposesOnce()
    {
        var model = await EncoderModel.LoadAsync(TinyModels.Seed1, Options);
        var lease = model.TryAcquire()!;

        var disposing = model.DisposeAsync().AsTask();

        Assert.False(disposing.IsCompleted);
        Assert.True(model.IsRetired);
        Assert.Null(model.TryAcquire());
        var result = await lease.Model.Batcher.EmbedAsync([TinyModels.RandomClips(1, [3, 4, 32, 32], 1)], [3, 4, 32, 32]); // the lease still serves
        Assert.Single(result.Embeddings);
        lease.Dispose();
        await disposing.WaitAsync(Patience);
        lease.Dispose();
        await model.DisposeAsync();
        Assert.Equal(1, model.Disposals);
        await Assert.ThrowsAsync<ModelNotReadyException>(() => model.Batcher.EmbedAsync([TinyModels.RandomClips(1, [3, 4, 32, 32], 1)], [3, 4, 32, 32]));
    }

    [Fact]
    public async Task LoadAsync_AwaitUsing_OwnsTheModelAndDisposesItOnce()
    {
        EncoderModel kept;
        await using (var model = await EncoderModel.LoadAsync(TinyModels.Seed1, new EncoderSessionOptions { Provider = ProviderPreference.Cpu }))
        {
            kept = model;
            Assert.Equal("tiny-seed1", model.Name);
            Assert.Single((await model.Batcher.EmbedAsync([TinyModels.RandomClips(1, [3, 4, 32, 32], 1)], [3, 4, 32, 32])).Embeddings);
        }

        Assert.True(kept.Disposed.IsCompletedSuccessfully);
        Assert.Equal(1, kept.Disposals);
    }

    [Fact]
    public async Task LoadAsync_FolderWithoutAModel_ModelLoadException()
    {
        string empty = Directory.CreateTempSubdirectory("cvrl-empty-").FullName;
        try
        {
            await Assert.ThrowsAsync<ModelLoadException>(() => EncoderModel.LoadAsync(empty, Options));
        }
        finally
        {
            Directory.Delete(empty, recursive: true);
        }
    }
}
