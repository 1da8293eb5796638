// The REST service is built by its own issue; until then the host only answers health probes.
var builder = WebApplication.CreateBuilder(args);
var app = builder.Build();
app.MapGet("/healthz", () => TypedResults.Ok(new { status = "ok" }));
app.Run();

/// <summary>Entry point, public so functional tests can host the app.</summary>
public partial class Program;
