using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.Serialization;

namespace CvrlServe.Api.Tests.Deploy;

/// <summary>
/// The part of kustomize that deploy/k8s uses, and nothing more: <c>resources</c> (files, or folders with a
/// kustomization.yaml), <c>images</c> (name → newName:newTag) and <c>patches</c> (strategic merge by kind and
/// name). Lists merge by key where Kubernetes' strategic merge does (containers, env, volumes… by name;
/// volumeMounts by mountPath) and are replaced elsewhere. A kustomization field it does not know is an
/// error, so a manifest that needs real kustomize cannot pass here unnoticed.
/// </summary>
internal static class Kustomize
{
    private static readonly HashSet<string> Known = ["apiVersion", "kind", "resources", "images", "patches"];

    private static readonly Dictionary<string, string> MergeKeys = new(StringComparer.Ordinal)
    {
        ["containers"] = "name",
        ["initContainers"] = "name",
        ["env"] = "name",
        ["volumes"] = "name",
        ["ports"] = "containerPort",
        ["volumeMounts"] = "mountPath",
    };

    public static List<Dictionary<object, object>> Render(string folder)
    {
        var kustomization = Load(File.ReadAllText(Path.Combine(folder, "kustomization.yaml"))).Single();
        var unknown = kustomization.Keys.Select(k => (string)k).Where(k => !Known.Contains(k)).ToArray();
        if (unknown.Length > 0)
        {
            throw new NotSupportedException($"{folder}/kustomization.yaml uses {string.Join(", ", unknown)}, which this renderer does not implement.");
        }

        var documents = new List<Dictionary<object, object>>();
        foreach (string resource in List(kustomization, "resources").Cast<string>())
        {
            string path = Path.GetFullPath(Path.Combine(folder, resource));
            documents.AddRange(Directory.Exists(path) ? Render(path) : Load(File.ReadAllText(path)));
        }

        foreach (var patch in List(kustomization, "patches").Cast<Dictionary<object, object>>())
        {
            foreach (var change in Load(File.ReadAllText(Path.Combine(folder, (string)patch["path"]))))
            {
                var target = documents.SingleOrDefault(d => Same(d, change, "kind") && Same((Dictionary<object, object>)d["metadata"], (Dictionary<object, object>)change["metadata"], "name"))
                    ?? throw new InvalidOperationException($"patch {patch["path"]}: no {change["kind"]} of that name among the resources");
                Merge(target, change);
            }
        }

        foreach (var image in List(kustomization, "images").Cast<Dictionary<object, object>>())
        {
            string name = (string)image["name"];
            string replacement = (string)(image.GetValueOrDefault("newName") ?? name) + (image.TryGetValue("newTag", out var tag) ? ":" + tag : "");
            foreach (var document in documents)
            {
                // As kustomize does: the name matches the image with or without a tag or digest.
                foreach (var container in Containers(document).Where(c => (string)c["image"] is { } i && (i == name || i.StartsWith(name + ":", StringComparison.Ordinal) || i.StartsWith(name + "@", StringComparison.Ordinal))))
                {
                    container["image"] = replacement;
                }
            }
        }

        return documents;
    }

    public static List<Dictionary<object, object>> Load(string yaml)
    {
        var deserializer = new DeserializerBuilder().Build();
        var parser = new Parser(new StringReader(yaml));
        parser.Consume<StreamStart>();
        var documents = new List<Dictionary<object, object>>();
        while (parser.Accept<DocumentStart>(out _))
        {
            if (deserializer.Deserialize<Dictionary<object, object>>(parser) is { } document)
            {
                documents.Add(document);
            }
        }

        return documents;
    }

    public static string Serialize(Dictionary<object, object> document) => new SerializerBuilder().Build().Serialize(document);

    /// <summary>Every container and init container of a workload's pod template (Deployment, Job).</summary>
    public static IEnumerable<Dictionary<object, object>> Containers(Dictionary<object, object> document)
    {
        if (!document.TryGetValue("spec", out var spec) || ((Dictionary<object, object>)spec).GetValueOrDefault("template") is not Dictionary<object, object> template)
        {
            yield break;
        }

        var podSpec = (Dictionary<object, object>)template["spec"];
        foreach (string key in new[] { "initContainers", "containers" })
        {
            foreach (var container in podSpec.GetValueOrDefault(key) as List<object> ?? [])
            {
                yield return (Dictionary<object, object>)container;
            }
        }
    }

    private static List<object> List(Dictionary<object, object> map, string key) => map.GetValueOrDefault(key) as List<object> ?? [];

    private static bool Same(Dictionary<object, object> a, Dictionary<object, object> b, string key) =>
        Equals(a.GetValueOrDefault(key), b.GetValueOrDefault(key));

    private static void Merge(Dictionary<object, object> target, Dictionary<object, object> change)
    {
        foreach (var (key, value) in change)
        {
            if (value is Dictionary<object, object> map && target.GetValueOrDefault(key) is Dictionary<object, object> existing)
            {
                Merge(existing, map);
            }
            else if (value is List<object> items && target.GetValueOrDefault(key) is List<object> current && MergeKeys.TryGetValue((string)key, out string? mergeKey))
            {
                foreach (var item in items.Cast<Dictionary<object, object>>())
                {
                    var match = current.Cast<Dictionary<object, object>>().FirstOrDefault(c => Equals(c.GetValueOrDefault(mergeKey), item[mergeKey]));
                    if (match is null)
                    {
                        current.Add(item);
                    }
                    else
                    {
                        Merge(match, item);
                    }
                }
            }
            else
            {
                target[key] = value;
            }
        }
    }
}
