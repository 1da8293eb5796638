using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace CvrlServe.Api.Hosting;

/// <summary>An error the API raises itself, already in the form the client gets.</summary>
public sealed class ApiProblemException(ProblemHttpResult problem, TimeSpan? retryAfter = null) : Exception(problem.ProblemDetails.Detail)
{
    public ProblemHttpResult Problem { get; } = problem;

    public TimeSpan? RetryAfter { get; } = retryAfter;
}

/// <summary>
/// A file a client uploaded, on disk under a name the server made up, with its SHA-256 and the form's other
/// fields. Disposing deletes the file: every request that reads an upload disposes it, whatever happens.
/// </summary>
public sealed class Upload : IDisposable
{
    internal Upload(string path, long length, string sha256, IReadOnlyDictionary<string, string> fields, string? fileName = null)
    {
        FileName = fileName;
        Path = path;
        Length = length;
        Sha256 = sha256;
        Fields = fields;
    }

    public string Path { get; }

    /// <summary>The file name the client gave the part, as sent (hostile: for display only, after sanitizing; never a path).</summary>
    public string? FileName { get; }

    public long Length { get; }

    /// <summary>Lower-case hex SHA-256 of the bytes received.</summary>
    public string Sha256 { get; }

    /// <summary>The form's text fields by name (case-insensitive), each at most <see cref="UploadReader.MaxFieldBytes"/>.</summary>
    public IReadOnlyDictionary<string, string> Fields { get; }

    public void Dispose() => File.Delete(Path);
}

/// <summary>
/// Reads a multipart/form-data body as it arrives: the one file part is streamed to disk through a fixed
/// buffer (never held in memory whole) and hashed on the way; past the size limit the read stops with 413.
/// Text fields are capped in number and size. Nothing the client names (file names, part headers) reaches
/// the disk or a process.
/// </summary>
public sealed class UploadReader(IOptions<CvrlServeOptions> options)
{
    public const int MaxFieldBytes = 4096;
    public const int MaxFields = 32;
    private const int BufferBytes = 81920;

    /// <summary>
    /// Margin past the request timeout before an upload nobody writes any more counts as a dead process's
    /// leftover: covers a request's last steps and clock differences between nodes on a shared volume.
    /// </summary>
    public static readonly TimeSpan LeftoverMargin = TimeSpan.FromMinutes(10);

    /// <summary>Where uploads in flight live (<see cref="CvrlServeOptions.UploadsFolder"/>).</summary>
    public string Folder { get; } = options.Value.FullUploadsFolder;

    /// <summary>
    /// Reads the request's form. Throws <see cref="ApiProblemException"/>: 415 when the body is not
    /// multipart/form-data, 400 when it is malformed or has no (or two) file parts named
    /// <paramref name="fileField"/>, 413 past <paramref name="maxBytes"/>.
    /// </summary>
    public async Task<Upload> ReadAsync(HttpRequest request, string fileField, long maxBytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var contentType) || !contentType.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase))
        {
            throw new ApiProblemException(Problems.UnsupportedMediaType($"Send multipart/form-data with the video in a part named '{fileField}'."));
        }

        string boundary = HeaderUtilities.RemoveQuotes(contentType.Boundary).Value ?? "";
        if (boundary.Length is 0 or > 70)
        {
            throw new ApiProblemException(Problems.Invalid("Content-Type", "The multipart boundary is missing or longer than 70 characters."));
        }

        // Kestrel's own limit (28.6 MB by default) would cut the body first; the part's size is checked below.
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = maxBytes + (1 << 20);
        }

        Directory.CreateDirectory(Folder);
        var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        string? path = null;
        long length = 0;
        string? sha = null;
        string? fileName = null;
        try
        {
            var reader = new MultipartReader(boundary, request.Body) { HeadersCountLimit = 16, HeadersLengthLimit = 8192 };
            MultipartSection? section;
            while ((section = await reader.ReadNextSectionAsync(cancellationToken)) is not null)
            {
                if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition) || !disposition.DispositionType.Equals("form-data", StringComparison.OrdinalIgnoreCase))
                {
                    throw new ApiProblemException(Problems.Invalid("Content-Disposition", "Every part needs Content-Disposition: form-data with a name."));
                }

                string name = HeaderUtilities.RemoveQuotes(disposition.Name).Value ?? "";
                if (disposition.IsFileDisposition() || name.Equals(fileField, StringComparison.OrdinalIgnoreCase))
                {
                    if (!name.Equals(fileField, StringComparison.OrdinalIgnoreCase))
                    {
                        throw new ApiProblemException(Problems.Invalid(name.Length > 64 ? name[..64] : name, $"Only one file part is read, named '{fileField}'."));
                    }

                    if (path is not null)
                    {
                        throw new ApiProblemException(Problems.Invalid(fileField, $"Send one '{fileField}' part."));
                    }

                    fileName = HeaderUtilities.RemoveQuotes(disposition.FileNameStar.HasValue ? disposition.FileNameStar : disposition.FileName).Value;
                    fileName = fileName is { Length: > 1024 } ? fileName[..1024] : fileName;
                    path = System.IO.Path.Combine(Folder, $"{Guid.NewGuid():N}.upload");
                    (length, sha) = await CopyAsync(section.Body, path, maxBytes, cancellationToken);
                }
                else
                {
                    if (fields.Count >= MaxFields)
                    {
                        throw new ApiProblemException(Problems.Invalid("form", $"At most {MaxFields} form fields are read."));
                    }

                    fields[name] = await ReadFieldAsync(section.Body, name, cancellationToken);
                }
            }
        }
        catch (Exception e) when (e is InvalidDataException or IOException && !request.HttpContext.RequestAborted.IsCancellationRequested && e is not BadHttpRequestException)
        {
            Delete(path);
            throw new ApiProblemException(Problems.Invalid("body", "The multipart body is malformed."));
        }
        catch
        {
            Delete(path);
            throw;
        }

        if (path is null || sha is null)
        {
            throw new ApiProblemException(Problems.Invalid(fileField, $"The form has no '{fileField}' part."));
        }

        return new Upload(path, length, sha, fields, fileName);
    }

    /// <summary>
    /// Removes uploads a process that died mid-request left behind: those last written longer ago than the
    /// request timeout plus <see cref="LeftoverMargin"/>. A live upload is written as it arrives and then
    /// read for at most the request timeout, so another replica's uploads in flight on a shared folder are
    /// never touched. Returns how many went.
    /// </summary>
    public int DeleteLeftovers()
    {
        if (!Directory.Exists(Folder))
        {
            return 0;
        }

        var cutoff = DateTime.UtcNow - TimeSpan.FromSeconds(options.Value.RequestTimeoutSeconds) - LeftoverMargin;
        int deleted = 0;
        foreach (string file in Directory.EnumerateFiles(Folder, "*.upload"))
        {
            if (File.GetLastWriteTimeUtc(file) < cutoff)
            {
                File.Delete(file);
                deleted++;
            }
        }

        return deleted;
    }

    private static async Task<(long Length, string Sha256)> CopyAsync(Stream body, string path, long maxBytes, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(BufferBytes);
        long length = 0;
        try
        {
            await using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1, FileOptions.Asynchronous);
            int read;
            while ((read = await body.ReadAsync(buffer.AsMemory(0, BufferBytes), cancellationToken)) > 0)
            {
                length += read;
                if (length > maxBytes)
                {
                    throw new ApiProblemException(Problems.TooLarge(maxBytes));
                }

                hash.AppendData(buffer, 0, read);
                await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return (length, Convert.ToHexStringLower(hash.GetHashAndReset()));
    }

    private static async Task<string> ReadFieldAsync(Stream body, string name, CancellationToken cancellationToken)
    {
        var buffer = new byte[MaxFieldBytes + 1];
        int total = 0;
        int read;
        while (total < buffer.Length && (read = await body.ReadAsync(buffer.AsMemory(total), cancellationToken)) > 0)
        {
            total += read;
        }

        if (total > MaxFieldBytes)
        {
            throw new ApiProblemException(Problems.Invalid(name.Length > 64 ? name[..64] : name, $"Form fields are at most {MaxFieldBytes} bytes."));
        }

        return Encoding.UTF8.GetString(buffer, 0, total);
    }

    private static void Delete(string? path)
    {
        if (path is not null)
        {
            File.Delete(path);
        }
    }
}
