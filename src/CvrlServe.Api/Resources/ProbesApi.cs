using System.Security.Cryptography;
using System.Text;
using CvrlServe.Api.Hosting;
using CvrlServe.Api.Jobs;
using CvrlServe.Core;
using CvrlServe.Core.Probes;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace CvrlServe.Api.Resources;

/// <summary>One labelled embedding (from <c>/v1/embeddings</c>, one per video).</summary>
public sealed record ProbeExample(string Label, float[] Embedding);

/// <summary>The body of <c>POST /v1/probes</c>: a probe trained on embeddings the client already has.</summary>
/// <param name="ModelId">The model id the embeddings came with; refused if it is not the model's.</param>
/// <param name="L2">L2 strengths to sweep on a held-out fifth of the examples; by default 0 and a decade ladder.</param>
public sealed record TrainProbeRequest(string Name, string? Model, string ModelId, IReadOnlyList<ProbeExample> Examples, double[]? L2 = null);

/// <summary>The multipart form of <c>POST /v1/probes/archive</c>.</summary>
public sealed class ProbeArchiveForm
{
    /// <summary>A .zip of class folders of videos.</summary>
    public required IFormFile File { get; init; }

    /// <summary>The probe's name.</summary>
    public required string Name { get; init; }

    /// <summary>The model's name; the default model when absent.</summary>
    public string? Model { get; init; }

    /// <summary>Training clips per video (1–64, default 4), each with its own random crop and flip.</summary>
    public int? ClipsPerVideo { get; init; }
}

/// <summary>A probe with its record: classes, training, the L2 sweep.</summary>
public sealed record ProbeResponse(ProbeSummary Probe, double L2, IReadOnlyList<SweepResult> Sweep, string? Preset);

/// <summary><c>POST /v1/probes</c> (admin), <c>GET</c> and <c>DELETE /v1/probes/{model}/{name}</c>.</summary>
public static class ProbesApi
{
    public static RouteGroupBuilder MapProbesApi(this RouteGroupBuilder v1)
    {
        ArgumentNullException.ThrowIfNull(v1);
        v1.MapPost("/probes", TrainAsync).WithName("TrainProbe").WithTags("Probes")
            .WithSummary("Train a probe from labelled embeddings (admin)")
            .WithDescription("Fits a linear classifier (L-BFGS logistic regression on standardized features, L2 chosen on a held-out fifth) on embeddings of one model and saves it in the data folder under `name`, replacing a runtime probe of that name. Needs an admin key.")
            .RequireAuthorization(ApiKeyHandler.AdminPolicy)
            .ProducesProblem(400).ProducesProblem(401).ProducesProblem(403).ProducesProblem(404).ProducesProblem(409).ProducesProblem(413).ProducesProblem(503);
        v1.MapPost("/probes/archive", TrainFromArchiveAsync).WithName("TrainProbeFromArchive").WithTags("Probes")
            .WithSummary("Train a probe from a zip of class folders of videos (admin; a background job)")
            .WithDescription("Upload a .zip whose folders are the classes (`CLASS/video.mp4`, optionally under one top folder). Answers 202 with the job; follow it at /v1/jobs/{id}. The archive is extracted safely (no traversal, links or bombs), each video gives `clipsPerVideo` training clips with the evaluation protocol's random crops and flips, and the probe is saved in the data folder.")
            .Accepts<ProbeArchiveForm>("multipart/form-data")
            .RequireAuthorization(ApiKeyHandler.AdminPolicy)
            .Produces<JobRecord>(StatusCodes.Status202Accepted)
            .WithUploadProblems()
            .DisableAntiforgery();
        v1.MapGet("/probes/{model}/{name}", GetAsync).WithName("GetProbe").WithTags("Probes")
            .WithSummary("A probe's record")
            .ProducesProblem(404).ProducesProblem(503);
        v1.MapDelete("/probes/{model}/{name}", DeleteAsync).WithName("DeleteProbe").WithTags("Probes")
            .WithSummary("Delete a runtime probe (admin)")
            .WithDescription("Probes that ship with a model are read-only (409).")
            .RequireAuthorization(ApiKeyHandler.AdminPolicy)
            .ProducesProblem(401).ProducesProblem(403).ProducesProblem(404).ProducesProblem(409);
        return v1;
    }

    private static async Task<Results<Created<ProbeResponse>, ProblemHttpResult>> TrainAsync(
        TrainProbeRequest request, ModelRegistryService models, ProbeCatalog probes, IOptions<CvrlServeOptions> options, CancellationToken cancellationToken)
    {
        if (request is null)
        {
            return Problems.Invalid("body", "Send {name, model, modelId, examples: [{label, embedding}]}.");
        }

        ProbeStore.ValidateName(request.Name);
        if (request.Examples is not { Count: >= 2 } examples || examples.Count > options.Value.MaxProbeExamples)
        {
            return Problems.Invalid("examples", $"Send 2 to {options.Value.MaxProbeExamples} examples.");
        }

        using var lease = models.Registry.Acquire(request.Model);
        var manifest = lease.Model.Manifest;
        if (!string.Equals(request.ModelId, manifest.ModelId, StringComparison.OrdinalIgnoreCase))
        {
            return Problems.Invalid("modelId", $"The examples' model id is not model '{lease.Model.Name}''s ({manifest.ModelId[..12]}…): embed them with this model first.");
        }

        if (probes.List(lease.Model.Name).Any(p => p.Name == request.Name && !p.Deletable))
        {
            throw new ProbeReadOnlyException(request.Name, lease.Model.Name);
        }

        for (int i = 0; i < examples.Count; i++)
        {
            var e = examples[i];
            if (e is null || string.IsNullOrWhiteSpace(e.Label) || e.Label.Length > 200)
            {
                return Problems.Invalid($"examples[{i}].label", "Every example needs a label of 1–200 characters.");
            }

            if (e.Embedding is null || e.Embedding.Length != manifest.Output.Dimension || e.Embedding.Any(v => !float.IsFinite(v)))
            {
                return Problems.Invalid($"examples[{i}].embedding", $"Every embedding is {manifest.Output.Dimension} finite numbers.");
            }
        }

        var labels = examples.Select(e => e.Label).Distinct(StringComparer.Ordinal).ToArray();
        if (labels.Length < 2)
        {
            return Problems.Invalid("examples", "A probe needs at least two labels.");
        }

        if (request.L2 is { } l2 && (l2.Length is 0 or > 20 || l2.Any(v => !double.IsFinite(v) || v < 0)))
        {
            return Problems.Invalid("l2", "'l2' is 1–20 non-negative numbers.");
        }

        // Each example is one video: the sweep holds out whole examples.
        var rows = examples.Select((e, i) => (LinearProbe.Normalized(e.Embedding), e.Label, i.ToString(System.Globalization.CultureInfo.InvariantCulture))).ToArray();
        var trainingOptions = new ProbeTrainingOptions(L2Candidates: request.L2);
        var (probe, best, sweep) = await Task.Run(() => ProbeTraining.Fit(rows, trainingOptions), cancellationToken);
        var trainingMetrics = ProbeEvaluation.Evaluate(probe.Classes, rows.Select(r => (r.Item2, probe.Predict(r.Item1))).ToArray());
        var metadata = new ProbeMetadata
        {
            Name = request.Name,
            Encoder = lease.Model.Name,
            ModelId = manifest.ModelId,
            EmbeddingSize = manifest.Output.Dimension,
            Classes = probe.Classes,
            Trainer = trainingOptions.Trainer,
            L2 = best,
            Sweep = sweep,
            TrainingExamples = rows.Length,
            TrainingMetrics = trainingMetrics,
            DataFingerprint = Fingerprint(examples),
        };
        await probes.DataStore(lease.Model.Name).SaveAsync(metadata, probe, cancellationToken);
        var summary = ModelsApi.Summary(metadata, lease.Model.Name, readOnly: false);
        return TypedResults.Created($"/v1/probes/{Uri.EscapeDataString(lease.Model.Name)}/{Uri.EscapeDataString(request.Name)}", new ProbeResponse(summary, best, sweep, null));
    }

    private static async Task<Results<Accepted<JobRecord>, ProblemHttpResult>> TrainFromArchiveAsync(
        HttpContext context, UploadReader uploads, ModelRegistryService models, ProbeCatalog probes, JobStore jobs, ProbeArchiveJobs runner, IOptions<CvrlServeOptions> options)
    {
        using var upload = await uploads.ReadAsync(context.Request, "file", options.Value.MaxArchiveBytes, context.RequestAborted);
        string name = upload.Text("name") ?? throw new ApiProblemException(Problems.Invalid("name", "Name the probe ('name')."));
        ProbeStore.ValidateName(name);
        int clips = upload.Number("clipsPerVideo", 1, 64) ?? 4;
        using var lease = models.Registry.Acquire(upload.Text("model"));
        string model = lease.Model.Name;
        if (probes.List(model).Any(p => p.Name == name && !p.Deletable))
        {
            throw new ProbeReadOnlyException(name, model);
        }

        var job = await jobs.CreateAsync(ProbeArchiveJobs.Kind, JobsApi.Owner(context.User), context.RequestAborted);
        // Heartbeated from now on: moving a large archive onto a shared volume may outlast the lease.
        runner.Hold(job.Id);
        string archive = Path.Combine(runner.WorkFolder, job.Id + ".zip");
        try
        {
            File.Move(upload.Path, archive);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            runner.Release(job.Id);
            try
            {
                File.Delete(archive);
                var error = new JobError("urn:cvrlserve:problem:overloaded", "Service busy", "The service could not store the archive; submit it again later.");
                await jobs.UpdateAsync(job.Id, r => r with { State = JobState.Failed, Error = error, Message = error.Detail }, CancellationToken.None);
            }
            catch (Exception cleanup) when (cleanup is IOException or UnauthorizedAccessException or CvrlException)
            {
                // The volume is failing: the job, no longer heartbeated, is marked interrupted after its lease.
            }

            throw new OverloadedException("the archive could not be stored (" + e.GetType().Name + ")", TimeSpan.FromSeconds(30));
        }

        if (!runner.TryEnqueue(new ProbeArchiveJob(job.Id, archive, model, name, clips)))
        {
            File.Delete(archive);
            var error = new JobError("urn:cvrlserve:problem:overloaded", "Service busy", "Too many probe-training jobs are queued.");
            await jobs.UpdateAsync(job.Id, r => r with { State = JobState.Failed, Error = error, Message = error.Detail }, CancellationToken.None);
            throw new OverloadedException("too many probe-training jobs are queued", TimeSpan.FromSeconds(30));
        }

        return TypedResults.Accepted($"/v1/jobs/{job.Id}", job);
    }

    private static async Task<Results<Ok<ProbeResponse>, ProblemHttpResult>> GetAsync(string model, string name, ModelRegistryService models, ProbeCatalog probes, CancellationToken cancellationToken)
    {
        using var lease = models.Registry.Acquire(model);
        var stored = await probes.LoadAsync(name, model, lease.Model.Manifest, cancellationToken);
        bool readOnly = probes.List(model).Any(p => p.Name == name && !p.Deletable);
        var m = stored.Metadata;
        return TypedResults.Ok(new ProbeResponse(ModelsApi.Summary(m, model, readOnly), m.L2, m.Sweep, m.Preset));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(string model, string name, ProbeCatalog probes, CancellationToken cancellationToken) =>
        await probes.DeleteAsync(model, name, cancellationToken) ? TypedResults.NoContent() : Problems.NotFound($"No runtime probe '{name}' for model '{model}'.");

    private static string Fingerprint(IReadOnlyList<ProbeExample> examples)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var e in examples)
        {
            hash.AppendData(Encoding.UTF8.GetBytes(e.Label + "\n"));
            hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(e.Embedding.AsSpan()));
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
