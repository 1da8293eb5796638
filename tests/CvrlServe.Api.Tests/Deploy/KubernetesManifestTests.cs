using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using CvrlServe.Api.Hosting;
using CvrlServe.Api.Tests.EndToEnd;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Configuration;

namespace CvrlServe.Api.Tests.Deploy;

/// <summary>
/// deploy/k8s checked without a cluster: every manifest and every rendered kustomization deserializes strictly
/// (unknown fields are errors) into the Kubernetes client's typed models, and what the manifests say agrees
/// with the service they deploy: settings that bind to <see cref="CvrlServeOptions"/>, limits and timeouts
/// above the service's, the gateway's body size, health paths the app maps, the metric the HPA scales on.
/// </summary>
public sealed partial class KubernetesManifestTests
{
    private static readonly string Root = FindRoot();
    private static readonly string K8s = Path.Combine(Root, "deploy", "k8s");

    public static TheoryData<string> Kustomizations => new(Directory.EnumerateFiles(K8s, "kustomization.yaml", SearchOption.AllDirectories)
        .Select(f => Path.GetRelativePath(K8s, Path.GetDirectoryName(f)!)).Order(StringComparer.Ordinal));

    public static TheoryData<string> Manifests => new(Directory.EnumerateFiles(K8s, "*.yaml", SearchOption.AllDirectories)
        .Where(f => Path.GetFileName(f) != "kustomization.yaml").Select(f => Path.GetRelativePath(K8s, f)).Order(StringComparer.Ordinal));

    [Theory]
    [MemberData(nameof(Manifests))]
    public void Manifest_EveryDocument_IsAKnownKindWithOnlyKnownFields(string manifest)
    {
        var objects = KubernetesYaml.LoadAllFromString(File.ReadAllText(Path.Combine(K8s, manifest)), strict: true);

        Assert.NotEmpty(objects);
        Assert.All(objects, o => Assert.IsAssignableFrom<IKubernetesObject>(o));
    }

    [Theory]
    [MemberData(nameof(Kustomizations))]
    public void Kustomization_Rendered_EveryDocumentIsStrictlyValid(string folder)
    {
        var objects = Rendered(folder);

        Assert.NotEmpty(objects);
        Assert.All(objects, o => Assert.IsAssignableFrom<IKubernetesObject>(o));
    }

    [Theory]
    [InlineData("  replicas: 2", "  replica: 2")]
    [InlineData("  replicas: 2", "  replicas: two")]
    [InlineData("      containers:", "      contianers:")]
    [InlineData("              containerPort: 8080", "              containerPort: 8080\n              hostPot: 80")]
    public void Validation_AMisspelledFieldOrWrongType_IsRefused(string original, string mutated)
    {
        string yaml = File.ReadAllText(Path.Combine(K8s, "base", "deployment.yaml"));
        Assert.Contains(original, yaml, StringComparison.Ordinal);

        Assert.ThrowsAny<Exception>(() => KubernetesYaml.LoadAllFromString(yaml.Replace(original, mutated, StringComparison.Ordinal), strict: true));
    }

    [Fact]
    public void Base_CpuImage_ServiceSelectsThePods_ProbesOnTheHealthEndpoints()
    {
        var objects = Rendered("base");
        var deployment = objects.OfType<V1Deployment>().Single();
        var container = deployment.Spec.Template.Spec.Containers.Single();
        var service = objects.OfType<V1Service>().Single();

        Assert.Equal("cvrlserve:cpu", container.Image);
        Assert.All(service.Spec.Selector, l => Assert.Equal(l.Value, deployment.Spec.Template.Metadata.Labels[l.Key]));
        Assert.Equal("/health/ready", container.ReadinessProbe.HttpGet.Path);
        Assert.Equal("/health/live", container.LivenessProbe.HttpGet.Path);
        Assert.Equal("/health/live", container.StartupProbe.HttpGet.Path);
        Assert.Equal(deployment.Spec.Selector.MatchLabels, objects.OfType<V1PodDisruptionBudget>().Single().Spec.Selector.MatchLabels);
    }

    [Fact]
    public async Task HealthPaths_OfTheProbes_AreOnesTheAppMaps()
    {
        var container = Rendered("base").OfType<V1Deployment>().Single().Spec.Template.Spec.Containers.Single();
        await using var app = new CvrlApiFactory();
        using var client = app.CreateClient();

        foreach (string path in new[] { container.ReadinessProbe.HttpGet.Path, container.LivenessProbe.HttpGet.Path })
        {
            using var response = await client.GetAsync(new Uri(path.TrimStart('/'), UriKind.Relative));
            Assert.NotEqual(HttpStatusCode.NotFound, response.StatusCode);
            Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable, $"{path}: {response.StatusCode}");
        }
    }

    [Theory]
    [InlineData("base")]
    [InlineData("overlays/gpu")]
    public void Settings_EveryCvrlVariable_BindsToTheOptionsAndValidates(string folder)
    {
        var container = Rendered(folder).OfType<V1Deployment>().Single().Spec.Template.Spec.Containers.Single();
        var settings = container.Env.Where(e => e.Name.StartsWith("Cvrl__", StringComparison.Ordinal))
            .ToDictionary(e => e.Name.Replace("__", ":", StringComparison.Ordinal), e => (string?)(e.Value ?? "a-secret-value-from-the-secret"));
        Assert.Equal(container.Env.Count(e => e.Name.StartsWith("Cvrl__", StringComparison.Ordinal)), settings.Count); // no duplicate after the patch
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();

        var options = new CvrlServeOptions();
        configuration.GetSection("Cvrl").Bind(options, o => o.ErrorOnUnknownConfiguration = true);

        var errors = new List<System.ComponentModel.DataAnnotations.ValidationResult>();
        System.ComponentModel.DataAnnotations.Validator.TryValidateObject(options, new(options), errors, validateAllProperties: true);
        Assert.Empty(errors.Select(e => e.ErrorMessage).Concat(options.Validate(new(options)).Select(e => e.ErrorMessage)));
    }

    /// <summary>
    /// The seed-models init container's script, run by the real sh on folders standing in for the image's
    /// /app/models and the claim's /shared: whole models only, never over one already there, a half copy a
    /// killed pod left behind does not count (and goes once old), pods seeding at once all succeed.
    /// </summary>
    [Fact]
    public async Task SeedModels_CopiesMissingModelsWhole_NeverOverwrites_IgnoresAKilledPodsHalfCopy()
    {
        string root = Directory.CreateTempSubdirectory("cvrl-seed-").FullName;
        try
        {
            string image = ImageModels(Path.Combine(root, "app", "models"), "alpha", "beta");
            string shared = Path.Combine(root, "shared");
            string models = Path.Combine(shared, "models");

            // Already there: beta, replaced by an operator. Half copies of alpha: one from a pod killed two
            // hours ago, one from a pod copying right now.
            Directory.CreateDirectory(Path.Combine(models, "beta"));
            await File.WriteAllTextAsync(Path.Combine(models, "beta", "encoder.onnx"), "the operator's beta");
            string killed = Directory.CreateDirectory(Path.Combine(models, ".seed-alpha-cvrlserve-7d9f-x2")).FullName;
            await File.WriteAllTextAsync(Path.Combine(killed, "encoder.onnx"), "weig");
            Directory.SetLastWriteTimeUtc(killed, DateTime.UtcNow - TimeSpan.FromHours(2));
            string copying = Directory.CreateDirectory(Path.Combine(models, ".seed-alpha-cvrlserve-7d9f-y3")).FullName;

            foreach (string pod in new[] { "pod-0", "pod-1" })
            {
                var run = await SeedAsync(image, shared, pod);
                Assert.True(run.ExitCode == 0, string.Join('\n', run.StderrTail));
            }

            Assert.Equal("weights of alpha", await File.ReadAllTextAsync(Path.Combine(models, "alpha", "encoder.onnx")));
            Assert.Equal("probe of alpha", await File.ReadAllTextAsync(Path.Combine(models, "alpha", "probes", "p.json")));
            Assert.Equal("the operator's beta", await File.ReadAllTextAsync(Path.Combine(models, "beta", "encoder.onnx")));
            Assert.False(File.Exists(Path.Combine(models, "beta", "probes", "p.json")));
            Assert.False(Directory.Exists(killed));
            Assert.True(Directory.Exists(copying));
            Assert.Equal(["alpha", "beta"], Directory.GetDirectories(models).Select(Path.GetFileName).Where(n => n![0] != '.').Order(StringComparer.Ordinal));
            Assert.True(Directory.Exists(Path.Combine(shared, "data")));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task SeedModels_FourPodsAtOnce_AllStart_EveryModelWhole_NoHalfCopyLeft()
    {
        string root = Directory.CreateTempSubdirectory("cvrl-seed-").FullName;
        try
        {
            string image = ImageModels(Path.Combine(root, "app", "models"), "alpha", "beta", "gamma");
            string shared = Path.Combine(root, "shared");

            var runs = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => SeedAsync(image, shared, $"pod-{i}")));

            Assert.All(runs, run => Assert.True(run.ExitCode == 0, string.Join('\n', run.StderrTail)));
            Assert.Equal(["alpha", "beta", "gamma"], Directory.GetDirectories(Path.Combine(shared, "models")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
            foreach (string model in new[] { "alpha", "beta", "gamma" })
            {
                Assert.Equal("weights of " + model, await File.ReadAllTextAsync(Path.Combine(shared, "models", model, "encoder.onnx")));
                Assert.False(Directory.Exists(Path.Combine(shared, "models", model, Path.GetFileName(model)))); // no copy nested inside
            }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task SeedModels_AnImageWithoutModels_StartsAnyway()
    {
        string root = Directory.CreateTempSubdirectory("cvrl-seed-").FullName;
        try
        {
            string image = Directory.CreateDirectory(Path.Combine(root, "app", "models")).FullName;

            var run = await SeedAsync(image, Path.Combine(root, "shared"), "pod-0");

            Assert.True(run.ExitCode == 0, string.Join('\n', run.StderrTail));
            Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(root, "shared", "models")));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static string ImageModels(string folder, params string[] names)
    {
        foreach (string model in names)
        {
            Directory.CreateDirectory(Path.Combine(folder, model, "probes"));
            File.WriteAllText(Path.Combine(folder, model, "encoder.onnx"), "weights of " + model);
            File.WriteAllText(Path.Combine(folder, model, "probes", "p.json"), "probe of " + model);
        }

        return folder;
    }

    /// <summary>The init container's script from the rendered base, with the image's and the claim's paths replaced, run by sh as pod <paramref name="pod"/>.</summary>
    private static Task<CvrlServe.Core.Video.ToolResult> SeedAsync(string image, string shared, string pod)
    {
        var init = Rendered("base").OfType<V1Deployment>().Single().Spec.Template.Spec.InitContainers.Single(c => c.Name == "seed-models");
        Assert.Equal(["sh", "-c"], init.Command.Take(2));
        string script = init.Command[2].Replace("/app/models", image, StringComparison.Ordinal).Replace("/shared", shared, StringComparison.Ordinal);
        return CvrlServe.Core.Video.ToolProcess.RunAsync("env", [$"HOSTNAME={pod}", "sh", "-c", script], null, TimeSpan.FromSeconds(30), "seed");
    }

    [Fact]
    public void Settings_AMisspelledVariable_IsCaughtByTheBinding()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Cvrl:PollIntervalSecond"] = "10" }).Build();

        Assert.Throws<InvalidOperationException>(() => configuration.GetSection("Cvrl").Bind(new CvrlServeOptions(), o => o.ErrorOnUnknownConfiguration = true));
    }

    [Fact]
    public void Drain_GracePeriod_CoversPreStopAndTheLongestRequest()
    {
        var deployment = Rendered("base").OfType<V1Deployment>().Single();
        var container = deployment.Spec.Template.Spec.Containers.Single();
        var options = new CvrlServeOptions();
        if (Env(container, "Cvrl__RequestTimeoutSeconds") is { } requestTimeout)
        {
            options.RequestTimeoutSeconds = double.Parse(requestTimeout, CultureInfo.InvariantCulture);
        }

        var preStop = container.Lifecycle.PreStop.Exec.Command;
        Assert.Equal("sleep", preStop[0]);

        // The host's drain (LimitsTests: the host waits ShutdownTimeout, which follows RequestTimeoutSeconds) after the preStop sleep.
        Assert.True(deployment.Spec.Template.Spec.TerminationGracePeriodSeconds > options.ShutdownTimeout.TotalSeconds + double.Parse(preStop[1], CultureInfo.InvariantCulture));
    }

    [Fact]
    public void Ingress_BodyAndTimeouts_MatchTheServiceAndTheNginxGateway()
    {
        var annotations = Rendered("base").OfType<V1Ingress>().Single().Metadata.Annotations;
        string template = File.ReadAllText(Path.Combine(Root, "deploy", "nginx", "cvrlserve.conf.template"));
        var defaults = new CvrlServeOptions();

        string bodySize = annotations["nginx.ingress.kubernetes.io/proxy-body-size"];
        Assert.Equal(NginxDirective(template, "client_max_body_size"), bodySize);
        Assert.True(Bytes(bodySize) > defaults.MaxUploadBytes, $"{bodySize} ≤ MaxUploadBytes {defaults.MaxUploadBytes}");
        foreach (string timeout in new[] { "proxy-read-timeout", "proxy-send-timeout" })
        {
            double seconds = double.Parse(annotations["nginx.ingress.kubernetes.io/" + timeout], CultureInfo.InvariantCulture);
            Assert.True(seconds > defaults.RequestTimeoutSeconds, $"{timeout} {seconds} ≤ {defaults.RequestTimeoutSeconds}");
            Assert.Equal(NginxDirective(template, timeout.Replace('-', '_')), seconds.ToString(CultureInfo.InvariantCulture) + "s");
        }

        Assert.Equal("error timeout", annotations["nginx.ingress.kubernetes.io/proxy-next-upstream"]);
    }

    [Fact]
    public void Hpa_ScalesOnTheInFlightSeriesTheServiceExports_ThroughTheAdapterRule()
    {
        var hpa = Rendered("base").OfType<V2HorizontalPodAutoscaler>().Single();
        var adapter = KubernetesYaml.LoadAllFromString(File.ReadAllText(Path.Combine(K8s, "monitoring", "prometheus-adapter-rules.yaml")), strict: true).OfType<V1ConfigMap>().Single();

        var metric = hpa.Spec.Metrics.Single();
        Assert.Equal("Pods", metric.Type);
        // InFlightMetricTests reads this series from a real server's /metrics.
        Assert.Equal(InFlightMetricTests.Series, metric.Pods.Metric.Name);
        Assert.Contains($"as: \"{InFlightMetricTests.Series}\"", adapter.Data["config.yaml"], StringComparison.Ordinal);
        Assert.Contains($"seriesQuery: '{InFlightMetricTests.Series}{{", adapter.Data["config.yaml"], StringComparison.Ordinal);
        Assert.Equal("cvrlserve", hpa.Spec.ScaleTargetRef.Name);
    }

    [Fact]
    public void Metrics_ScrapedOnTheKeylessMetricsPort_WhichTheServiceDoesNotExpose()
    {
        var objects = Rendered("base");
        var pod = objects.OfType<V1Deployment>().Single().Spec.Template;
        var container = pod.Spec.Containers.Single();
        int metricsPort = int.Parse(Env(container, "Cvrl__MetricsPort")!, CultureInfo.InvariantCulture);

        // Keys are required, so the scraper must use the metrics port (MetricsPortTests: open there, and only there).
        Assert.Equal("true", Env(container, "Cvrl__Keys__RequireKey"));
        Assert.Equal(metricsPort.ToString(CultureInfo.InvariantCulture), pod.Metadata.Annotations["prometheus.io/port"]);
        Assert.Equal("/metrics", pod.Metadata.Annotations["prometheus.io/path"]);
        Assert.Contains(metricsPort.ToString(CultureInfo.InvariantCulture), Env(container, "ASPNETCORE_HTTP_PORTS")!.Split(';'));
        Assert.Contains(container.Ports, p => p.ContainerPort == metricsPort);
        var service = objects.OfType<V1Service>().Single();
        Assert.DoesNotContain(service.Spec.Ports, p => p.TargetPort.Value == metricsPort.ToString(CultureInfo.InvariantCulture) || p.TargetPort.Value == "metrics" || p.Port == metricsPort);
    }

    [Fact]
    public void GpuOverlay_GpuImageOneGpuCudaProvider_BaseSettingsKept()
    {
        var container = Rendered("overlays/gpu").OfType<V1Deployment>().Single().Spec.Template.Spec.Containers.Single();

        Assert.Equal("cvrlserve:gpu", container.Image);
        Assert.Equal(new ResourceQuantity("1"), container.Resources.Limits["nvidia.com/gpu"]);
        Assert.Equal("Cuda", Env(container, "Cvrl__Provider"));
        Assert.Equal("true", Env(container, "Cvrl__RequireGpu")); // OperationsTests: not ready on the CPU
        Assert.Equal("Poll", Env(container, "Cvrl__ChangeDetection"));
        Assert.Equal("/health/ready", container.ReadinessProbe.HttpGet.Path);
    }

    [Fact]
    public void BatchJob_IndexedAndSharded_WithOptionsCvrlEmbedHas()
    {
        var job = Rendered("batch").OfType<V1Job>().Single();
        var container = job.Spec.Template.Spec.Containers.Single();
        // The CLI's options, read from its source: the API's tests do not reference the training project.
        string source = File.ReadAllText(Path.Combine(Root, "src", "CvrlServe.Training", "Commands", "EmbedCommand.cs"));
        var known = OptionLiteral().Matches(source).Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);

        Assert.Equal("Indexed", job.Spec.CompletionMode);
        // An evicted pod (SIGTERM: cvrl embed stops, exit 143) spends none of its index's retries.
        Assert.Contains(job.Spec.PodFailurePolicy.Rules, r => r.Action == "Ignore" && r.OnPodConditions.Any(c => c.Type == "DisruptionTarget"));
        Assert.Contains("--allow-refused", container.Args);
        Assert.Equal("/app/cvrl/cvrl", container.Command.Single());
        Assert.Equal("embed", container.Args[0]);
        Assert.All(container.Args.Where(a => a.StartsWith("--", StringComparison.Ordinal)), a => Assert.Contains(a, known));
        Assert.Equal($"auto/{job.Spec.Completions}", container.Args[container.Args.IndexOf("--shard") + 1]);
        Assert.Contains("{shard}", container.Args[container.Args.IndexOf("--out") + 1], StringComparison.Ordinal);
        Assert.StartsWith("/app/models/", container.Args[container.Args.IndexOf("--model") + 1], StringComparison.Ordinal);
        Assert.True(Directory.Exists(Path.Combine(Root, "models", Path.GetFileName(container.Args[container.Args.IndexOf("--model") + 1]))), "the Job names a model the image does not carry");
    }

    private static List<object> Rendered(string folder) =>
        Kustomize.Render(Path.Combine(K8s, folder)).SelectMany(d => KubernetesYaml.LoadAllFromString(Kustomize.Serialize(d), strict: true)).ToList();

    private static string? Env(V1Container container, string name) => container.Env.SingleOrDefault(e => e.Name == name)?.Value;

    private static string NginxDirective(string template, string name) =>
        Regex.Match(template, $@"^\s*{name}\s+(\S+);", RegexOptions.Multiline) is { Success: true } m ? m.Groups[1].Value : throw new InvalidOperationException($"{name} not in the nginx template");

    private static long Bytes(string size) => size[^1] switch
    {
        'k' or 'K' => long.Parse(size[..^1], CultureInfo.InvariantCulture) * 1024,
        'm' or 'M' => long.Parse(size[..^1], CultureInfo.InvariantCulture) * 1024 * 1024,
        'g' or 'G' => long.Parse(size[..^1], CultureInfo.InvariantCulture) * 1024 * 1024 * 1024,
        _ => long.Parse(size, CultureInfo.InvariantCulture),
    };

    [GeneratedRegex("\"(--[a-z-]+)\"")]
    private static partial Regex OptionLiteral();

    private static string FindRoot()
    {
        string folder = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(folder, "CvrlServe.sln")))
        {
            folder = Path.GetDirectoryName(folder) ?? throw new InvalidOperationException("CvrlServe.sln not found above the test folder.");
        }

        return folder;
    }
}
