using System.Net;
using System.Net.Http.Headers;

namespace CvrlServe.Api.Tests.EndToEnd;

/// <summary>
/// A request body sent in two steps: all but its last <c>tailBytes</c> at once, the rest only when
/// <see cref="Release"/> is called, so a test knows the request is in flight (its headers and most of
/// its body are on the server) for as long as it likes. Content-Length is the whole body's.
/// </summary>
public sealed class HeldBackContent : HttpContent
{
    private readonly byte[] _body;
    private readonly int _tailBytes;
    private readonly TaskCompletionSource _headSent = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public HeldBackContent(byte[] body, MediaTypeHeaderValue contentType, int tailBytes)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tailBytes);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(tailBytes, body.Length);
        _body = body;
        _tailBytes = tailBytes;
        Headers.ContentType = contentType;
    }

    /// <summary>The whole form <paramref name="form"/> would send, held back by <paramref name="tailBytes"/>.</summary>
    public static async Task<HeldBackContent> FromAsync(MultipartFormDataContent form, int tailBytes)
    {
        ArgumentNullException.ThrowIfNull(form);
        byte[] body = await form.ReadAsByteArrayAsync();
        return new HeldBackContent(body, form.Headers.ContentType!, tailBytes);
    }

    /// <summary>Completes once the head of the body was handed to the connection.</summary>
    public Task HeadSent => _headSent.Task;

    /// <summary>Lets the rest of the body go.</summary>
    public void Release() => _released.TrySetResult();

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
    {
        int head = _body.Length - _tailBytes;
        await stream.WriteAsync(_body.AsMemory(0, head));
        await stream.FlushAsync();
        _headSent.TrySetResult();
        await _released.Task;
        await stream.WriteAsync(_body.AsMemory(head));
    }

    protected override bool TryComputeLength(out long length)
    {
        length = _body.Length;
        return true;
    }
}
