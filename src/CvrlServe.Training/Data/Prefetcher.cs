using System.Collections.Concurrent;

namespace CvrlServe.Training.Data;

/// <summary>
/// Makes items for indices [from, to) on its own thread, at most <c>ahead</c> waiting. The consumer takes
/// them in order on its thread (training keeps one thread: TorchSharp's dispose scopes are per thread);
/// an exception in the producer is rethrown to the consumer.
/// </summary>
public sealed class Prefetcher<T> : IDisposable
{
    private readonly BlockingCollection<T> _queue;
    private readonly CancellationTokenSource _stop;
    private readonly Thread _producer;
    private Exception? _failure;

    public Prefetcher(Func<long, T> make, long from, long to, int ahead, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(make);
        _queue = new BlockingCollection<T>(Math.Max(1, ahead));
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _producer = new Thread(() =>
        {
            try
            {
                for (long i = from; i < to && !_stop.IsCancellationRequested; i++)
                {
                    _queue.Add(make(i), _stop.Token);
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                // Stopped by the consumer or the caller.
            }
            catch (Exception e)
            {
                _failure = e;
            }
            finally
            {
                _queue.CompleteAdding();
            }
        })
        { IsBackground = true, Name = "cvrl-prefetch" };
        _producer.Start();
    }

    /// <summary>The next item; blocks until it is ready.</summary>
    public T Take()
    {
        try
        {
            return _queue.Take(_stop.Token);
        }
        catch (InvalidOperationException) when (_queue.IsCompleted)
        {
            throw new InvalidOperationException("The prefetcher stopped early.", _failure);
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _producer.Join();
        _queue.Dispose();
        _stop.Dispose();
    }
}
