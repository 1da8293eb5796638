using Microsoft.Extensions.Options;

namespace CvrlServe.Api.Tests.Hosting;

/// <summary>The library's settings are validated at start like the others: a value out of range stops the service.</summary>
public sealed class LibraryOptionsTests
{
    [Theory]
    [InlineData("Cvrl:Library:JobAboveSeconds", "-5")]
    [InlineData("Cvrl:Library:SyncIntervalSeconds", "0")]
    [InlineData("Cvrl:Library:ConcurrentJobs", "0")]
    [InlineData("Cvrl:Library:QueuedJobs", "0")]
    public async Task Start_LibraryValueOutOfRange_RefusedNamingIt(string setting, string value)
    {
        await using var app = new CvrlApiFactory(new Dictionary<string, string?> { [setting] = value });

        var error = await Assert.ThrowsAsync<OptionsValidationException>(app.StartedAsync);

        Assert.Contains(setting["Cvrl:Library:".Length..], error.Message, StringComparison.Ordinal);
    }
}
