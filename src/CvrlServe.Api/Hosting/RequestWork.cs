using System.Globalization;
using CvrlServe.Core;
using Microsoft.Extensions.Options;

namespace CvrlServe.Api.Hosting;

/// <summary>What every upload endpoint does around its work: the request deadline and form-field parsing.</summary>
public static class RequestWork
{
    /// <summary>
    /// Runs <paramref name="work"/> under the request's deadline (<see cref="CvrlServeOptions.RequestTimeoutSeconds"/>)
    /// and the client's connection: past the deadline the work is cancelled (Core kills its ffmpeg) and a
    /// <see cref="DeadlineExceededException"/> (504) is thrown.
    /// </summary>
    public static async Task<T> WithDeadlineAsync<T>(HttpContext context, IOptions<CvrlServeOptions> options, Func<CancellationToken, Task<T>> work)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(work);
        var timeout = TimeSpan.FromSeconds(options.Value.RequestTimeoutSeconds);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        deadline.CancelAfter(timeout);
        try
        {
            return await work(deadline.Token);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !context.RequestAborted.IsCancellationRequested)
        {
            throw new DeadlineExceededException("The request", timeout);
        }
    }

    /// <summary>A form field as text, null when absent or empty.</summary>
    public static string? Text(this Upload upload, string name)
    {
        ArgumentNullException.ThrowIfNull(upload);
        return upload.Fields.TryGetValue(name, out string? value) && !string.IsNullOrWhiteSpace(value) ? value.Trim() : null;
    }

    /// <summary>A form field as an integer in [min, max]; 400 naming the field otherwise.</summary>
    public static int? Number(this Upload upload, string name, int min, int max)
    {
        if (upload.Text(name) is not { } text)
        {
            return null;
        }

        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) && value >= min && value <= max
            ? value
            : throw new ApiProblemException(Problems.Invalid(name, $"'{name}' must be an integer from {min} to {max}."));
    }

    /// <summary>A form field as a boolean (true/false/1/0); 400 naming the field otherwise.</summary>
    public static bool? Flag(this Upload upload, string name) => upload.Text(name)?.ToLowerInvariant() switch
    {
        null => null,
        "true" or "1" or "on" or "yes" => true,
        "false" or "0" or "off" or "no" => false,
        _ => throw new ApiProblemException(Problems.Invalid(name, $"'{name}' must be true or false.")),
    };
}
