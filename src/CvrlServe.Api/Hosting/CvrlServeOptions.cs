using System.ComponentModel.DataAnnotations;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;

namespace CvrlServe.Api.Hosting;

/// <summary>
/// The service's settings, bound from the <c>Cvrl</c> section of <c>appsettings.json</c> and environment
/// variables (<c>Cvrl__ModelsFolder</c>, <c>Cvrl__Keys__Admin__0</c>, …) and validated at start.
/// </summary>
public sealed class CvrlServeOptions : IValidatableObject
{
    public const string Section = "Cvrl";

    /// <summary>One folder per encoder (encoder.onnx + encoder.json, probes/ beside them). May be read-only.</summary>
    [Required]
    public string ModelsFolder { get; set; } = "models";

    /// <summary>Writable: probes trained at runtime, job records, uploads in flight. Replicas may share it (a ReadWriteMany volume).</summary>
    [Required]
    public string DataFolder { get; set; } = "data";

    /// <summary>
    /// Where uploads live while their request runs; DATA/uploads when unset. Point it at storage of this
    /// process alone (a pod's emptyDir) when replicas share the data folder.
    /// </summary>
    public string? UploadsFolder { get; set; }

    /// <summary>How changes to the models folder are noticed: Watch (inotify), Poll (a scan that sees other nodes' writes on a network volume), Both.</summary>
    public ChangeDetection ChangeDetection { get; set; } = ChangeDetection.Both;

    /// <summary>Seconds between two scans of the models folder when polling.</summary>
    [Range(0.1, 3600)]
    public double PollIntervalSeconds { get; set; } = 10;

    /// <summary>How often a replica re-stamps the jobs it has accepted (queued or running), in seconds.</summary>
    [Range(0.1, 3600)]
    public double JobHeartbeatSeconds { get; set; } = 10;

    /// <summary>
    /// A queued or running job whose stamp is older than this (its replica died) is marked failed
    /// (interrupted) by any replica; at least 3 heartbeats.
    /// </summary>
    [Range(0.3, 86_400)]
    public double JobLeaseSeconds { get; set; } = 60;

    /// <summary>The model used when a request names none; the first ready model when unset.</summary>
    public string? DefaultModel { get; set; }

    /// <summary>Cuda tries the CUDA provider and falls back to the CPU (the reason is reported); Cpu never tries CUDA.</summary>
    public ProviderPreference Provider { get; set; } = ProviderPreference.Cuda;

    /// <summary>
    /// Not ready (<c>/health/ready</c> 503, with the reason) while the default model runs on the CPU: for GPU
    /// hosts, where a CUDA that failed to load (driver too old, a library missing) should take the replica out
    /// of the load balancer rather than serve 100× slower.
    /// </summary>
    public bool RequireGpu { get; set; }

    /// <summary>Largest upload accepted, in bytes (413 while streaming past it).</summary>
    [Range(1024, 64L * 1024 * 1024 * 1024)]
    public long MaxUploadBytes { get; set; } = 256L * 1024 * 1024;

    /// <summary>Longest video accepted, in seconds.</summary>
    [Range(0.1, 24 * 3600)]
    public double MaxDurationSeconds { get; set; } = 600;

    /// <summary>Largest frame accepted, in pixels.</summary>
    [Range(1, 1L << 32)]
    public long MaxPixelsPerFrame { get; set; } = 3840L * 2160;

    /// <summary>Everything one request may take (upload excluded): past it the request is stopped with 504 and its ffmpeg killed.</summary>
    [Range(0.01, 3600)]
    public double RequestTimeoutSeconds { get; set; } = 120;

    /// <summary>
    /// How long a stopping host (SIGTERM) lets requests in flight finish: the longest a request may take plus
    /// 15 s for its upload's tail and the answer. An orchestrator's grace period must cover it.
    /// </summary>
    public TimeSpan ShutdownTimeout => TimeSpan.FromSeconds(RequestTimeoutSeconds + 15);

    /// <summary>Bytes of decoded frames and tensors all requests together may hold; a request waits for its share.</summary>
    [Range(1L << 20, 1L << 40)]
    public long DecodedMemoryBudgetBytes { get; set; } = 1L << 30;

    /// <summary>Requests that may wait for the memory budget before more are refused with 503.</summary>
    [Range(0, 10_000)]
    public int MaxWaitingDecodes { get; set; } = 32;

    /// <summary>Decodes at once: decode workers, or ffmpeg/ffprobe processes.</summary>
    [Range(1, 256)]
    public int MaxConcurrentProcesses { get; set; } = Math.Max(1, Environment.ProcessorCount);

    /// <summary>
    /// How videos are read: Auto (the persistent decode worker where it is installed and matches the
    /// installed libav, else ffmpeg processes), Worker (the same, stated), or Cli (always ffprobe and ffmpeg
    /// processes). GET /v1/models and the <c>cvrlserve_decode_path</c> metric say which one is in use.
    /// </summary>
    public DecodePath DecodePath { get; set; } = DecodePath.Auto;

    /// <summary>The decode worker binary; unset looks beside the service, then on PATH.</summary>
    public string? DecodeWorkerPath { get; set; }

    /// <summary>
    /// Decode h264, hevc and av1 uploads with NVDEC where it opens (a GPU host), else in software; set in
    /// the GPU image. GET /v1/models counts NVDEC and software decodes and says why the last fell back.
    /// </summary>
    public bool Nvdec { get; set; }

    public BatchingOptions Batching { get; set; } = new();

    public KeyOptions Keys { get; set; } = new();

    public RateLimitOptions RateLimit { get; set; } = new();

    /// <summary>
    /// Proxies whose X-Forwarded-For/-Proto are believed: addresses (10.0.0.7) or networks in CIDR notation
    /// (10.244.0.0/16, a cluster's pod range where the ingress controller's pods live); none by default.
    /// </summary>
    public List<string> KnownProxies { get; set; } = [];

    /// <summary>
    /// A port that serves <c>/metrics</c> and <c>/health/*</c> without a key and nothing else; <c>/metrics</c> is
    /// then served on no other port. For a scraper inside the cluster while clients need keys. The server
    /// must also listen on it (<c>ASPNETCORE_HTTP_PORTS=8080;9090</c>); 0 (the default): <c>/metrics</c> on
    /// every port, behind a key when keys are required.
    /// </summary>
    [Range(0, 65535)]
    public int MetricsPort { get; set; }

    /// <summary>Segment thumbnails: the long side in pixels, 0 to turn them off for every request.</summary>
    [Range(0, 512)]
    public int ThumbnailSize { get; set; } = 160;

    /// <summary>Most examples one JSON probe-training request may carry.</summary>
    [Range(2, 1_000_000)]
    public int MaxProbeExamples { get; set; } = 100_000;

    /// <summary>Largest archive of videos for probe training, in bytes, and what it may expand to.</summary>
    [Range(1024, 1L << 40)]
    public long MaxArchiveBytes { get; set; } = 2L * 1024 * 1024 * 1024;

    [Range(1024, 1L << 42)]
    public long MaxArchiveExpandedBytes { get; set; } = 8L * 1024 * 1024 * 1024;

    [Range(2, 1_000_000)]
    public int MaxArchiveEntries { get; set; } = 10_000;

    /// <summary>The video library: where entries and jobs are stored, and when an upload becomes a job.</summary>
    public LibraryOptions Library { get; set; } = new();

    public string FullModelsFolder => Path.GetFullPath(ModelsFolder);

    public string FullDataFolder => Path.GetFullPath(DataFolder);

    public string FullUploadsFolder => Path.GetFullPath(UploadsFolder ?? Path.Combine(DataFolder, "uploads"));

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (DefaultModel is not null && !ModelRegistry.IsValidName(DefaultModel))
        {
            yield return new ValidationResult($"DefaultModel '{DefaultModel}' is not a model name.", [nameof(DefaultModel)]);
        }

        if (RequireGpu && Provider != ProviderPreference.Cuda)
        {
            yield return new ValidationResult("RequireGpu needs Provider Cuda.", [nameof(RequireGpu)]);
        }

        foreach (string proxy in KnownProxies)
        {
            if (!System.Net.IPAddress.TryParse(proxy, out _) && !System.Net.IPNetwork.TryParse(proxy, out _))
            {
                yield return new ValidationResult($"KnownProxies: '{proxy}' is neither an IP address nor a network in CIDR notation (10.244.0.0/16).", [nameof(KnownProxies)]);
            }
        }

        if (JobLeaseSeconds < 3 * JobHeartbeatSeconds)
        {
            yield return new ValidationResult("JobLeaseSeconds must be at least 3 × JobHeartbeatSeconds, so one late heartbeat does not fail a live job.", [nameof(JobLeaseSeconds)]);
        }

        // ValidateDataAnnotations does not descend into nested settings: the library's ranges are checked here.
        var library = new List<ValidationResult>();
        if (!Validator.TryValidateObject(Library, new ValidationContext(Library), library, validateAllProperties: true))
        {
            foreach (var result in library)
            {
                yield return new ValidationResult($"Library: {result.ErrorMessage}", result.MemberNames.Select(m => $"{nameof(Library)}:{m}").ToArray());
            }
        }

        if (Keys.RequireKey && Keys.Clients.Count == 0 && Keys.Admin.Count == 0)
        {
            yield return new ValidationResult("Keys:RequireKey is set but no key is configured.", [nameof(Keys)]);
        }

        foreach (string key in Keys.Admin.Concat(Keys.Clients))
        {
            if (key.Length < 16)
            {
                yield return new ValidationResult("API keys must be at least 16 characters.", [nameof(Keys)]);
                break;
            }
        }

        if (Batching.MaxBatchSize < 1 || Batching.MaxBatchSize > 1024 || Batching.MaxBatchWaitMilliseconds < 0 || Batching.MaxBatchWaitMilliseconds > 10_000
            || Batching.QueueCapacity < 1 || Batching.IntraOpThreads < 0)
        {
            yield return new ValidationResult("Batching: MaxBatchSize 1–1024, MaxBatchWaitMilliseconds 0–10000, QueueCapacity ≥ 1, IntraOpThreads ≥ 0 (0: the default).", [nameof(Batching)]);
        }

        if (RateLimit.PermitsPerWindow < 0 || RateLimit.WindowSeconds <= 0 || RateLimit.QueueLimit < 0)
        {
            yield return new ValidationResult("RateLimit: PermitsPerWindow ≥ 0 (0 turns it off), WindowSeconds > 0, QueueLimit ≥ 0.", [nameof(RateLimit)]);
        }
    }

    /// <summary>What the encoder sessions are built with.</summary>
    public EncoderSessionOptions SessionOptions() => new()
    {
        Provider = Provider,
        MaxBatchSize = Batching.MaxBatchSize,
        MaxBatchWait = TimeSpan.FromMilliseconds(Batching.MaxBatchWaitMilliseconds),
        QueueCapacity = Batching.QueueCapacity,
        IntraOpThreads = Batching.IntraOpThreads > 0 ? Batching.IntraOpThreads : new EncoderSessionOptions().IntraOpThreads,
        InferenceTimeout = TimeSpan.FromSeconds(RequestTimeoutSeconds),
    };
}

/// <summary>How clips from concurrent requests are batched for the encoder.</summary>
public sealed class BatchingOptions
{
    public int MaxBatchSize { get; set; } = 8;

    public double MaxBatchWaitMilliseconds { get; set; } = 10;

    /// <summary>Clips that may wait for the encoder before requests are refused with 503.</summary>
    public int QueueCapacity { get; set; } = 256;

    /// <summary>ONNX Runtime intra-op threads; 0 for the default (cores − 1 from 4 cores up).</summary>
    public int IntraOpThreads { get; set; }
}

/// <summary>API keys, sent as <c>X-Api-Key</c> or <c>Authorization: Bearer</c>.</summary>
public sealed class KeyOptions
{
    /// <summary>Keys that may also train and delete probes.</summary>
    public List<string> Admin { get; set; } = [];

    /// <summary>Keys that may embed and classify.</summary>
    public List<string> Clients { get; set; } = [];

    /// <summary>When set, every /v1 request needs a key; otherwise only admin endpoints do.</summary>
    public bool RequireKey { get; set; }
}

/// <summary>The video library (stored embeddings, search) and the store that also holds the jobs.</summary>
public sealed class LibraryOptions
{
    /// <summary>An Npgsql connection string: replicas share one PostgreSQL database. Unset: SQLite in <see cref="SqliteFile"/>.</summary>
    public string? Postgres { get; set; }

    /// <summary>The SQLite file when no PostgreSQL is configured; DATA/library.db when unset. One process per file.</summary>
    public string? SqliteFile { get; set; }

    /// <summary>An upload longer than this many seconds is stored by a background job (202); 0 makes every upload a job.</summary>
    [Range(0, 86_400)]
    public double JobAboveSeconds { get; set; } = 120;

    /// <summary>How often each replica reads other replicas' writes into its search index, in seconds.</summary>
    [Range(0.05, 3600)]
    public double SyncIntervalSeconds { get; set; } = 2;

    /// <summary>Ingest jobs run at once per replica, and how many may wait.</summary>
    [Range(1, 64)]
    public int ConcurrentJobs { get; set; } = 1;

    [Range(1, 10_000)]
    public int QueuedJobs { get; set; } = 32;

    /// <summary>Webhooks called when an ingest job ends: allowlisted hosts and the HMAC secret (off until both are set).</summary>
    public Library.WebhookOptions Webhooks { get; set; } = new();

    /// <summary>Most entries one batch classification reads.</summary>
    [Range(1, 1_000_000)]
    public int MaxBatchClassify { get; set; } = 10_000;
}

/// <summary>A fixed window per client (its API key, else its address).</summary>
public sealed class RateLimitOptions
{
    /// <summary>Requests per window per client; 0 turns the limiter off.</summary>
    public int PermitsPerWindow { get; set; } = 120;

    public double WindowSeconds { get; set; } = 60;

    /// <summary>Requests that may wait for the next window instead of being refused.</summary>
    public int QueueLimit { get; set; }
}
