using CvrlServe.Api.Hosting;

if (HealthProbe.IsRequested(args))
{
    return await HealthProbe.RunAsync(args, Console.Out, Console.Error);
}

var builder = WebApplication.CreateBuilder(args);
builder.AddCvrlServe();
var app = builder.Build();
app.UseCvrlServe();
await app.RunAsync();
return 0;

/// <summary>Entry point, public so functional tests can host the app.</summary>
public partial class Program;
