using System.Diagnostics.Metrics;
using CvrlServe.Core.Video;

namespace CvrlServe.Api.Hosting;

/// <summary>
/// The service's instruments (System.Diagnostics.Metrics, meter <c>CvrlServe</c>), exported at /metrics with
/// the HTTP request metrics by prometheus-net: stage times, batch sizes, the batcher queue, the decoded-memory
/// budget in use, and which execution provider each model runs on.
/// </summary>
public sealed class CvrlMetrics : IDisposable
{
    public const string MeterName = "CvrlServe";
    private readonly Meter _meter;
    private readonly Histogram<double> _decode;
    private readonly Histogram<double> _inference;
    private readonly Histogram<double> _queue;
    private readonly Histogram<int> _clips;
    private readonly Histogram<double> _search;
    private long _inFlight;

    private static readonly double[] Seconds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
    private static readonly double[] Counts = [1, 2, 4, 8, 16, 32, 64, 128];

    /// <summary>Bucket boundaries for the exporter: seconds for durations, powers of two for counts.</summary>
    public static double[] BucketsOf(Instrument instrument)
    {
        ArgumentNullException.ThrowIfNull(instrument);
        return instrument.Unit == "s" ? Seconds : Counts;
    }

    private static readonly Lazy<IDisposable> Exporter = new(() =>
    {
        // One adapter for the process, ours, with our buckets, listening from the start: prometheus-net's
        // default one starts at the first scrape (missing what was recorded before), and replacing it drops
        // the instrument names it keeps statically. Several hosts in one process (tests) share it and the
        // default registry; their observable gauges then overwrite each other.
        Prometheus.Metrics.SuppressDefaultMetrics(new Prometheus.SuppressDefaultMetricOptions { SuppressMeters = true });
        return Prometheus.MeterAdapter.StartListening(new Prometheus.MeterAdapterOptions { ResolveHistogramBuckets = BucketsOf });
    });

    /// <summary>Publishes every .NET meter (ours, ASP.NET Core's, the runtime's) to prometheus-net's registry; idempotent.</summary>
    public static void StartExporter() => _ = Exporter.Value;

    public CvrlMetrics(IMeterFactory meters, VideoReader reader, ModelRegistryService models, Library.VideoLibrary library)
    {
        ArgumentNullException.ThrowIfNull(meters);
        _meter = meters.Create(MeterName);
        _decode = _meter.CreateHistogram<double>("decode_duration", "s", "Probe and decode time per video");
        _inference = _meter.CreateHistogram<double>("inference_duration", "s", "Encoder time per video (its batches)");
        _queue = _meter.CreateHistogram<double>("batch_queue_wait", "s", "Time a video's clips waited for the encoder");
        _clips = _meter.CreateHistogram<int>("request_clips", "{clip}", "Clips (views) per request sent to the encoder");
        _search = _meter.CreateHistogram<double>("library_search_duration", "s", "Time to scan a search index (exact cosine over every vector of the space)");
        _meter.CreateObservableGauge("requests_in_flight", () => Interlocked.Read(ref _inFlight), "{request}",
            "Video requests (embed, classify) being served: uploading, decoding, waiting for or running the encoder. The autoscaling signal (deploy/k8s).");
        _meter.CreateObservableGauge("decoded_memory_in_use", () => reader.MemoryBudget.InUseBytes, "By", "Decoded-memory budget in use");
        _meter.CreateObservableGauge("decoded_memory_budget", () => reader.MemoryBudget.CapacityBytes, "By", "Decoded-memory budget");
        _meter.CreateObservableGauge("decoded_memory_waiting", () => reader.MemoryBudget.Waiting, "{request}", "Requests waiting for the decoded-memory budget");
        _meter.CreateObservableGauge("batch_queue_length", () => Leased(models, m => (long)m.Batcher.Statistics.Queued), "{clip}", "Clips waiting for the encoder, by model");
        _meter.CreateObservableCounter("batches", () => Leased(models, m => m.Batcher.Statistics.Batches), "{batch}", "Encoder batches run, by model");
        _meter.CreateObservableCounter("batched_clips", () => Leased(models, m => m.Batcher.Statistics.Clips), "{clip}", "Clips run through the encoder, by model (÷ batches = mean batch size)");
        _meter.CreateObservableGauge("largest_batch", () => Leased(models, m => (long)m.Batcher.Statistics.LargestBatch), "{clip}", "Largest batch so far, by model");
        _meter.CreateObservableGauge("decode_path", () => new Measurement<int>(1, new KeyValuePair<string, object?>("path", reader.UsesWorker ? "worker" : "cli")),
            null, "1 for the way uploads are decoded: worker (the persistent libav worker) or cli (ffmpeg processes)");
        _meter.CreateObservableCounter("decode_worker_declined", () => reader.WorkerDeclined, "{decode}",
            "Decodes the worker handed to the ffmpeg command line (a frame size change midway)");
        _meter.CreateObservableCounter("decodes_by_decoder", () => reader.NvdecUse is { } use
                ? [new Measurement<long>(use.Nvdec, new KeyValuePair<string, object?>("decoder", "nvdec")), new Measurement<long>(use.Software, new KeyValuePair<string, object?>("decoder", "software"))]
                : Array.Empty<Measurement<long>>(),
            "{decode}", "With NVDEC enabled: decodes served by NVDEC and in software");
        _meter.CreateObservableGauge("library_vectors", () => library.Counts().SelectMany(c => new[]
            {
                new Measurement<long>(c.Videos, new KeyValuePair<string, object?>("scope", "video"), new KeyValuePair<string, object?>("model_id", c.ModelId[..Math.Min(12, c.ModelId.Length)])),
                new Measurement<long>(c.Clips, new KeyValuePair<string, object?>("scope", "clip"), new KeyValuePair<string, object?>("model_id", c.ModelId[..Math.Min(12, c.ModelId.Length)])),
            }), "{vector}", "Vectors in this replica's search indexes, by scope and embedding space (the first 12 digits of its model id)");
        _meter.CreateObservableGauge("library_sequence", () => library.Seen, "{change}", "The library change-log sequence this replica's search indexes reflect (equal on every replica once synced)");
        _meter.CreateObservableGauge("model_ready", () => models.Registry.List().Select(s =>
            new Measurement<int>(s.Ready ? 1 : 0, new KeyValuePair<string, object?>("model", s.Name), new KeyValuePair<string, object?>("provider", s.Provider ?? "none"))),
            null, "1 when the model is loaded and serving, by model and execution provider");
    }

    /// <summary>Records one search's scan time.</summary>
    public void RecordSearch(TimeSpan scan) => _search.Record(scan.TotalSeconds);

    /// <summary>Records one embedded video's stage times and view count.</summary>
    /// <summary>Counts a video request in <c>requests_in_flight</c> until the scope is disposed.</summary>
    public InFlightScope InFlight()
    {
        Interlocked.Increment(ref _inFlight);
        return new InFlightScope(this);
    }

    /// <summary>Ends one request's count.</summary>
    public readonly struct InFlightScope(CvrlMetrics owner) : IDisposable
    {
        public void Dispose() => Interlocked.Decrement(ref owner._inFlight);
    }

    public void Record(Core.Inference.StageTimings timings, int views)
    {
        ArgumentNullException.ThrowIfNull(timings);
        _decode.Record((timings.Probe + timings.Decode).TotalSeconds);
        _inference.Record(timings.Inference.TotalSeconds);
        _queue.Record(timings.Queue.TotalSeconds);
        _clips.Record(views);
    }

    public void Dispose() => _meter.Dispose();

    private static IEnumerable<Measurement<long>> Leased(ModelRegistryService models, Func<Core.Inference.EncoderModel, long> read)
    {
        foreach (var status in models.Registry.List().Where(s => s.Ready))
        {
            long? value = null;
            try
            {
                using var lease = models.Registry.Acquire(status.Name);
                value = read(lease.Model);
            }
            catch (CvrlServe.Core.CvrlException)
            {
                // Swapped or retired between List and Acquire: skip it this scrape.
            }

            if (value is { } v)
            {
                yield return new Measurement<long>(v, new KeyValuePair<string, object?>("model", status.Name));
            }
        }
    }
}
