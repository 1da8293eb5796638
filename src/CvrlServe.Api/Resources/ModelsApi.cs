using CvrlServe.Api.Hosting;
using CvrlServe.Core;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Probes;
using CvrlServe.Core.Video;
using Microsoft.AspNetCore.Http.HttpResults;

namespace CvrlServe.Api.Resources;

/// <summary>An encoder the service knows: whether it serves, its identity, its view, and its probes.</summary>
/// <param name="Provider">The ONNX Runtime execution provider in use (CUDAExecutionProvider or CPUExecutionProvider).</param>
/// <param name="ProviderReason">Why the CPU serves when CUDA was asked for.</param>
/// <param name="Error">Why the model could not be loaded, when it could not.</param>
public sealed record ModelResponse(
    string Name, bool Ready, bool IsDefault, string? ModelId, string? EncoderSha256, int? Dimension, string? Provider, string? ProviderReason,
    string? Error, DateTimeOffset? LoadedAt, ModelViewResponse? View, string? Architecture, IReadOnlyList<ProbeSummary> Probes);

/// <summary>How a served video becomes model inputs: clips of frames at a stride, resized and cropped.</summary>
public sealed record ModelViewResponse(int Frames, int Stride, int ShortSide, int CropSize, string CropMode, int Clips, double? TargetFps);

/// <summary>A probe (linear classifier) of a model.</summary>
/// <param name="ReadOnly">Ships with the model (cannot be replaced or deleted through the API).</param>
/// <param name="Top1">Held-out top-1 accuracy when the probe was evaluated, else on its training data.</param>
public sealed record ProbeSummary(string Name, string Model, string? ModelId, IReadOnlyList<string> Classes, int TrainingExamples, double? Top1, bool ReadOnly, DateTimeOffset? CreatedUtc, string? Error);

/// <summary>Every model.</summary>
public sealed record ModelsResponse(string? DefaultModel, IReadOnlyList<ModelResponse> Models, DecoderResponse Decoder);

/// <summary>How uploads are decoded: <c>worker</c> (the persistent libav worker) or <c>cli</c> (ffmpeg processes), and why.</summary>
/// <param name="Nvdec">With NVDEC enabled: decodes it served, decodes that ran in software, and why the last of those did.</param>
public sealed record DecoderResponse(string Path, string Detail, long HandedToCli, NvdecResponse? Nvdec)
{
    public static DecoderResponse From(VideoReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        string backend = reader.DecodeBackend;
        int open = backend.IndexOf(" (", StringComparison.Ordinal);
        var nvdec = reader.NvdecUse is { } use ? new NvdecResponse(use.Nvdec, use.Software, use.LastSoftwareReason) : null;
        return new DecoderResponse(open < 0 ? backend : backend[..open], open < 0 ? "" : backend[(open + 2)..^1], reader.WorkerDeclined, nvdec);
    }
}

/// <summary>NVDEC's share of the decodes since start.</summary>
public sealed record NvdecResponse(long Decodes, long SoftwareDecodes, string? LastSoftwareReason);

/// <summary><c>GET /v1/models</c> and <c>GET /v1/models/{model}</c>.</summary>
public static class ModelsApi
{
    public static RouteGroupBuilder MapModelsApi(this RouteGroupBuilder v1)
    {
        ArgumentNullException.ThrowIfNull(v1);
        v1.MapGet("/models", ListAsync).WithName("ListModels").WithTags("Models")
            .WithSummary("List the encoders and their probes")
            .WithDescription("Every model folder: ready or not (and why), its model id (the embedding space), the execution provider it runs on, its view, and its probes with their classes and accuracy; and how uploads are decoded (the decode worker or ffmpeg processes).");
        v1.MapGet("/models/{model}", GetAsync).WithName("GetModel").WithTags("Models")
            .WithSummary("One encoder and its probes")
            .ProducesProblem(StatusCodes.Status404NotFound);
        return v1;
    }

    private static async Task<Ok<ModelsResponse>> ListAsync(ModelRegistryService models, ProbeCatalog probes, VideoReader reader, CancellationToken cancellationToken)
    {
        var list = new List<ModelResponse>();
        foreach (var status in models.Registry.List())
        {
            list.Add(await DescribeAsync(status, models, probes, cancellationToken));
        }

        return TypedResults.Ok(new ModelsResponse(models.Registry.DefaultName, list, DecoderResponse.From(reader)));
    }

    private static async Task<Results<Ok<ModelResponse>, ProblemHttpResult>> GetAsync(string model, ModelRegistryService models, ProbeCatalog probes, CancellationToken cancellationToken)
    {
        var status = models.Registry.List().FirstOrDefault(s => s.Name == model)
            ?? throw new ModelNotFoundException(model, models.Registry.List().Select(s => s.Name));
        return TypedResults.Ok(await DescribeAsync(status, models, probes, cancellationToken));
    }

    private static async Task<ModelResponse> DescribeAsync(ModelStatus status, ModelRegistryService models, ProbeCatalog probes, CancellationToken cancellationToken)
    {
        EncoderModel.Lease? lease = null;
        try
        {
            lease = status.Ready ? models.Registry.Acquire(status.Name) : null;
        }
        catch (CvrlException)
        {
            // Swapped out since List: describe it from its status.
        }

        using (lease)
        {
            var manifest = lease?.Model.Manifest;
            var summaries = new List<ProbeSummary>();
            foreach (var (name, deletable) in probes.List(status.Name))
            {
                summaries.Add(manifest is null
                    ? new ProbeSummary(name, status.Name, null, [], 0, null, !deletable, null, "The model is not loaded.")
                    : await SummarizeAsync(probes, name, status.Name, manifest, !deletable, cancellationToken));
            }

            var view = manifest?.View;
            return new ModelResponse(status.Name, status.Ready, status.IsDefault, status.ModelId, status.EncoderSha256, status.Dimension, status.Provider,
                lease?.Model.Session.FallbackReason, status.Error, status.LoadedAt,
                view is null ? null : new ModelViewResponse(view.Frames, view.Stride, view.ShortSide, view.CropSize, view.CropMode.ToString(), view.Clips, view.TargetFps),
                manifest is null ? null : $"{manifest.Architecture.Name}×{manifest.Architecture.Width:G3}", summaries);
        }
    }

    internal static async Task<ProbeSummary> SummarizeAsync(ProbeCatalog probes, string name, string model, EncoderManifest manifest, bool readOnly, CancellationToken cancellationToken)
    {
        try
        {
            var stored = await probes.LoadAsync(name, model, manifest, cancellationToken);
            return Summary(stored.Metadata, model, readOnly);
        }
        catch (CvrlException e)
        {
            return new ProbeSummary(name, model, null, [], 0, null, readOnly, null, e.Message);
        }
    }

    internal static ProbeSummary Summary(ProbeMetadata metadata, string model, bool readOnly) => new(
        metadata.Name, model, metadata.ModelId, metadata.Classes, metadata.TrainingExamples,
        (metadata.EvaluationMetrics ?? metadata.TrainingMetrics)?.Top1, readOnly, metadata.CreatedUtc, null);
}
