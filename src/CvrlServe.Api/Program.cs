using CvrlServe.Api.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.AddCvrlServe();
var app = builder.Build();
app.UseCvrlServe();
app.Run();

/// <summary>Entry point, public so functional tests can host the app.</summary>
public partial class Program;
