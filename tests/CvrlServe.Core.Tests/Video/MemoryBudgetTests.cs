using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.Video;

public class MemoryBudgetTests
{
    [Fact]
    public async Task ReserveAsync_Fits_GrantedAtOnceAndReleasedOnDispose()
    {
        var budget = new MemoryBudget(100, maxWaiting: 4);
        using (var a = await budget.ReserveAsync(60))
        {
            Assert.Equal(60, budget.InUseBytes);
        }

        Assert.Equal(0, budget.InUseBytes);
        Assert.Equal(60, budget.PeakBytes);
    }

    [Fact]
    public async Task ReserveAsync_DoesNotFit_WaitsInArrivalOrderUntilReleased()
    {
        var budget = new MemoryBudget(100, maxWaiting: 4);
        var held = await budget.ReserveAsync(70);
        var large = budget.ReserveAsync(80);  // first in line
        var small = budget.ReserveAsync(20);  // would fit now, but waits behind the large one: no starvation
        Assert.False(large.IsCompleted);
        Assert.False(small.IsCompleted);
        Assert.Equal(2, budget.Waiting);

        held.Dispose();
        using var first = await large;
        using var second = await small;
        Assert.Equal(100, budget.InUseBytes);
        Assert.Equal(100, budget.PeakBytes);
    }

    [Fact]
    public async Task ReserveAsync_QueueFull_Overloaded()
    {
        var budget = new MemoryBudget(100, maxWaiting: 1);
        using var held = await budget.ReserveAsync(100);
        var waiting = budget.ReserveAsync(10);

        var error = await Assert.ThrowsAsync<OverloadedException>(() => budget.ReserveAsync(10));
        Assert.Equal(ErrorKind.Overloaded, error.Kind);
        Assert.True(error.RetryAfter > TimeSpan.Zero);
        Assert.False(waiting.IsCompleted);
    }

    [Fact]
    public async Task ReserveAsync_LargerThanTheBudget_LimitExceeded()
    {
        var budget = new MemoryBudget(100, maxWaiting: 4);
        var error = await Assert.ThrowsAsync<LimitExceededException>(() => budget.ReserveAsync(101));
        Assert.Equal((Limit.DecodedBytes, 101d, 100d), (error.Limit, error.Actual, error.Maximum));
    }

    [Fact]
    public async Task ReserveAsync_CancelledWhileWaiting_LeavesTheQueueAndTheNextOneIn()
    {
        var budget = new MemoryBudget(100, maxWaiting: 4);
        var held = await budget.ReserveAsync(50);
        using var cancel = new CancellationTokenSource();
        var blocked = budget.ReserveAsync(80, cancel.Token);
        var behind = budget.ReserveAsync(40);

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => blocked);
        using var granted = await behind; // 50 + 40 fits once the 80 left the head of the queue
        Assert.Equal(0, budget.Waiting);
        Assert.Equal(90, budget.InUseBytes);
        held.Dispose();
    }

    [Fact]
    public async Task Reservation_DisposedTwice_ReleasesOnce()
    {
        var budget = new MemoryBudget(100, maxWaiting: 4);
        var a = await budget.ReserveAsync(30);
        using var b = await budget.ReserveAsync(30);
        a.Dispose();
        a.Dispose();
        Assert.Equal(30, budget.InUseBytes);
    }

    [Fact]
    public async Task ReserveAsync_ManyConcurrent_NeverAboveCapacityAndAllServed()
    {
        var budget = new MemoryBudget(1000, maxWaiting: 64);
        long inUse = 0;
        long peak = 0;
        var random = new Random(7);
        var sizes = Enumerable.Range(0, 48).Select(_ => (long)random.Next(1, 600)).ToArray();
        await Task.WhenAll(sizes.Select(async size =>
        {
            await Task.Yield();
            using var reservation = await budget.ReserveAsync(size);
            long now = Interlocked.Add(ref inUse, size);
            InterlockedMax(ref peak, now);
            await Task.Yield();
            Interlocked.Add(ref inUse, -size);
        }));

        Assert.InRange(peak, sizes.Max(), 1000);
        Assert.Equal(0, budget.InUseBytes);
    }

    private static void InterlockedMax(ref long target, long value)
    {
        long seen;
        while ((seen = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen)
        {
        }
    }
}
