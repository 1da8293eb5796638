using System.Collections.Concurrent;
using CvrlServe.Core;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Probes;
using Microsoft.Extensions.Options;

namespace CvrlServe.Api.Hosting;

/// <summary>
/// The probes of every model, found in two places: beside the model in the models folder (read-only, as in a
/// container image) and in the data folder (<c>DATA/probes/MODEL/probes/</c>, where probes trained at
/// runtime are saved). A probe in the data folder shadows one of the same name beside the model; only
/// data-folder probes can be replaced or deleted.
/// </summary>
public sealed class ProbeCatalog(IOptions<CvrlServeOptions> options)
{
    private readonly ConcurrentDictionary<string, (ProbeStore Data, ProbeStore Model)> _stores = new(StringComparer.Ordinal);

    /// <summary>The writable store for <paramref name="model"/>'s runtime probes.</summary>
    public ProbeStore DataStore(string model) => Stores(model).Data;

    /// <summary>Names of every probe of <paramref name="model"/>, and whether each can be deleted.</summary>
    public IReadOnlyList<(string Name, bool Deletable)> List(string model)
    {
        var (data, bundled) = Stores(model);
        var runtime = data.List();
        return runtime.Select(n => (n, true)).Concat(bundled.List().Except(runtime, StringComparer.Ordinal).Select(n => (n, false)))
            .OrderBy(p => p.Item1, StringComparer.Ordinal).ToArray();
    }

    /// <summary>
    /// Loads probe <paramref name="name"/> of <paramref name="model"/> (the folder's name), checked against the
    /// embedding space <paramref name="manifest"/> describes. Throws <see cref="ProbeNotFoundException"/> when
    /// neither place has it.
    /// </summary>
    public Task<StoredProbe> LoadAsync(string name, string model, EncoderManifest manifest, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ProbeStore.ValidateName(name);
        var (data, bundled) = Stores(model);
        if (File.Exists(data.PathOf(name)))
        {
            return data.LoadForModelAsync(name, manifest, cancellationToken);
        }

        if (File.Exists(bundled.PathOf(name)))
        {
            return bundled.LoadForModelAsync(name, manifest, cancellationToken);
        }

        throw new ProbeNotFoundException(name, model, List(model).Select(p => p.Name).ToArray());
    }

    /// <summary>
    /// Deletes a runtime probe (safe against saves of it from other replicas, see <see cref="ProbeStore.DeleteAsync"/>).
    /// Returns false when there is none of that name; throws <see cref="InvalidRequestException"/> for a probe
    /// that ships with the model (read-only).
    /// </summary>
    public async Task<bool> DeleteAsync(string model, string name, CancellationToken cancellationToken)
    {
        ProbeStore.ValidateName(name);
        var (data, bundled) = Stores(model);
        if (await data.DeleteAsync(name, cancellationToken))
        {
            return true;
        }

        return File.Exists(bundled.PathOf(name)) ? throw new ProbeReadOnlyException(name, model) : false;
    }

    private (ProbeStore Data, ProbeStore Model) Stores(string model)
    {
        if (!ModelRegistry.IsValidName(model))
        {
            throw new InvalidRequestException("Model names are letters, digits, '-', '_' and '.', not starting with '.'.");
        }

        return _stores.GetOrAdd(model, m => (
            new ProbeStore(Path.Combine(options.Value.FullDataFolder, "probes", m)),
            new ProbeStore(Path.Combine(options.Value.FullModelsFolder, m))));
    }
}

/// <summary>A probe that ships with its model cannot be replaced or deleted through the API.</summary>
public sealed class ProbeReadOnlyException(string probe, string model)
    : CvrlException(ErrorKind.InvalidArgument, $"Probe '{probe}' ships with model '{model}' and is read-only; train one under another name.");
