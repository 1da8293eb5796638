using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace CvrlServe.Core.Video;

/// <summary>How a <see cref="VideoReader"/> reads files: the persistent decode worker where it can, or always ffmpeg's command line.</summary>
public enum DecodePath
{
    /// <summary>The worker when it is installed and its libav matches; otherwise the command line.</summary>
    Auto,

    /// <summary>The worker; if it cannot start, the command line (and <see cref="VideoReader.DecodeBackend"/> says why).</summary>
    Worker,

    /// <summary>ffprobe and ffmpeg processes for every request (the reference the worker is tested against).</summary>
    Cli,
}

/// <summary>What a probe by the worker answered: a status (0 or an AVERROR), ffprobe-shaped JSON, the error log.</summary>
internal sealed record WorkerProbeResult(int Status, string Json, IReadOnlyList<string> Log);

/// <summary>What a decode by the worker answered: a status, the bytes it produced (all of them), the error log.</summary>
internal sealed record WorkerDecodeResult(int Status, long Produced, IReadOnlyList<string> Log, string Decoder = "software")
{
    /// <summary>The pictures came from NVDEC.</summary>
    public bool OnNvdec => Decoder == "nvdec";

    /// <summary>The worker would not reproduce the command line exactly here: run ffmpeg instead.</summary>
    public bool UseCli => Status == DecodeWorkerPool.UseCliStatus;
}

/// <summary>The worker process died or broke the protocol during a request (a crash, a resource limit, a bug).</summary>
internal sealed class DecodeWorkerFailedException(string message) : Exception(message);

/// <summary>
/// A pool of <c>cvrl-decode-worker</c> processes (src/decode-worker): each opens, probes and decodes
/// files in-process with libav and serves one request at a time over its pipes, so a request costs no
/// process start-up. A worker runs with resource limits (address space, CPU seconds, open files) and no
/// new privileges; one that crashes, overruns its deadline or breaks the protocol is killed and
/// replaced, and only its request fails. A worker whose request failed or made libav log an error is
/// not reused; the others are recycled after <see cref="DecodeWorkerLimits.MaxRequests"/> requests. The first start checks the worker's libav against the one it
/// was built and tested with; on a mismatch or a missing binary the pool is <see cref="Unavailable"/>
/// and the reader uses the command line. Thread-safe; the reader bounds how many requests run at once.
/// </summary>
public sealed class DecodeWorkerPool : IDisposable
{
    /// <summary>The protocol this reader speaks (protocol.h).</summary>
    public const int Protocol = 4;

    /// <summary>The status the worker answers when the command line must do the decode (WORKER_USE_CLI).</summary>
    public const int UseCliStatus = -0x43564C49;

    /// <summary>The file name of the worker binary.</summary>
    public const string BinaryName = "cvrl-decode-worker";

    private const int MaxMessage = 1 << 20;
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(20);

    private readonly string _path;
    private readonly DecodeWorkerLimits _limits;
    private readonly ConcurrentBag<Worker> _idle = [];
    private readonly object _gate = new();
    private string? _unavailable;
    private string? _versions;
    private bool _checked;
    private bool _disposed;
    private int _started;

    public DecodeWorkerPool(string path, DecodeWorkerLimits? limits = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        _path = path;
        _limits = limits ?? new DecodeWorkerLimits();
    }

    /// <summary>Why the pool cannot serve (no binary, another libav major), or null while it can or has not been tried.</summary>
    public string? Unavailable => _unavailable;

    /// <summary>The libav versions the worker reported at its first start.</summary>
    public string? Versions => _versions;

    /// <summary>Worker processes started so far (replacements included).</summary>
    public int Started => Volatile.Read(ref _started);

    /// <summary>
    /// Where the worker binary is: <paramref name="configured"/> when given, else beside this assembly,
    /// else on PATH; null when none is found.
    /// </summary>
    public static string? Locate(string? configured = null)
    {
        if (!string.IsNullOrEmpty(configured))
        {
            return configured;
        }

        string beside = Path.Combine(AppContext.BaseDirectory, BinaryName);
        if (File.Exists(beside))
        {
            return beside;
        }

        foreach (string folder in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(folder, BinaryName);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>Starts one worker if none was started yet, so that <see cref="Unavailable"/> is known. False when unavailable.</summary>
    public async Task<bool> CheckAsync(CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _checked))
        {
            return _unavailable is null;
        }

        var worker = await RentAsync(cancellationToken);
        if (worker is not null)
        {
            Return(worker, healthy: true);
        }

        return _unavailable is null;
    }

    /// <summary>Probes <paramref name="path"/> as ffprobe would; null when the pool is unavailable.</summary>
    internal Task<WorkerProbeResult?> ProbeAsync(string path, IReadOnlyList<string> formats, IReadOnlyList<string> decoders, long maxPixels, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var request = new MessageWriter();
        request.String(path).String(string.Join(',', formats)).String(string.Join(',', decoders)).Int64(maxPixels);
        return RequestAsync('P', request, timeout, "Reading the video's media information", async (reader, token) =>
        {
            var (type, payload) = await reader.ReadMessageAsync(token);
            Expect(type, 'J');
            var body = new MessageReader(payload);
            var result = new WorkerProbeResult(body.Int32(), body.String(), Lines(body.String()));
            body.End();
            return result;
        }, r => r.Status == 0 && r.Log.Count == 0, cancellationToken);
    }

    /// <summary>
    /// Runs <paramref name="command"/> as ffmpeg would, writing the frames into <paramref name="frames"/>;
    /// null when the pool is unavailable.
    /// </summary>
    internal Task<WorkerDecodeResult?> DecodeAsync(DecodeCommand command, byte[] frames, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var request = new MessageWriter();
        request.UInt32((uint)command.Inputs.Count);
        foreach (var input in command.Inputs)
        {
            var (seek, duration, formats, decoders, maxPixels) = InputOptions(input);
            request.String(input.Path).String(seek).String(duration).String(formats).String(decoders).Int64(maxPixels);
        }

        request.String(command.FilterGraph).Int64(frames.Length);
        return RequestAsync('D', request, timeout, "Decoding the video", async (reader, token) =>
        {
            long filled = 0;
            while (true)
            {
                var (type, length) = await reader.ReadHeaderAsync(token);
                if (type == 'F')
                {
                    if (filled + length > frames.Length)
                    {
                        throw new DecodeWorkerFailedException($"the worker sent {filled + length} bytes for a {frames.Length}-byte buffer");
                    }

                    await reader.ReadExactlyAsync(frames.AsMemory((int)filled, length), token);
                    filled += length;
                    continue;
                }

                Expect(type, 'E');
                var body = new MessageReader(await reader.ReadPayloadAsync(length, token));
                var result = new WorkerDecodeResult(body.Int32(), body.Int64(), Lines(body.String()), body.String());
                body.End();
                if (result.Produced < filled)
                {
                    throw new DecodeWorkerFailedException($"the worker counted {result.Produced} bytes but sent {filled}");
                }

                return result;
            }
        }, r => r.Status == 0 && r.Log.Count == 0, cancellationToken);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
        }

        while (_idle.TryTake(out var worker))
        {
            worker.Dispose();
        }
    }

    /// <summary>
    /// Runs one request on a rented worker and returns it to the pool; null when the pool is unavailable.
    /// A request that failed, or whose answer is not <paramref name="clean"/> (an error status, libav
    /// errors logged), leaves its worker out of the pool.
    /// </summary>
    private async Task<T?> RequestAsync<T>(char type, MessageWriter request, TimeSpan timeout, string operation,
        Func<PipeReader, CancellationToken, Task<T>> read, Func<T, bool> clean, CancellationToken cancellationToken)
        where T : class
    {
        byte[] payload = request.ToArray();
        var worker = await RentAsync(cancellationToken);
        if (worker is null)
        {
            return null;
        }

        bool healthy = false;
        try
        {
            var answer = await worker.RequestAsync(type, payload, timeout, operation, read, cancellationToken);
            healthy = clean(answer);
            return answer;
        }
        finally
        {
            Return(worker, healthy);
        }
    }

    /// <summary>The -ss, -t, -format_whitelist, -codec_whitelist and -max_pixels values of one input (DecodeCommand's options).</summary>
    internal static (string Seek, string Duration, string Formats, string Decoders, long MaxPixels) InputOptions(DecodeInput input)
    {
        string seek = "", duration = "", formats = "", decoders = "";
        long maxPixels = 0;
        var options = input.Options;
        for (int i = 0; i + 1 < options.Count; i += 2)
        {
            switch (options[i])
            {
                case "-ss": seek = options[i + 1]; break;
                case "-t": duration = options[i + 1]; break;
                case "-format_whitelist": formats = options[i + 1]; break;
                case "-codec_whitelist": decoders = options[i + 1]; break;
                case "-max_pixels": maxPixels = long.Parse(options[i + 1], CultureInfo.InvariantCulture); break;
                case "-protocol_whitelist" when options[i + 1] == "file": break;
                default: throw new ArgumentException($"The decode worker does not take the input option '{options[i]}'.", nameof(input));
            }
        }

        return (seek, duration, formats, decoders, maxPixels);
    }

    private static void Expect(char type, char expected)
    {
        if (type != expected)
        {
            throw new DecodeWorkerFailedException($"the worker answered '{type}' where '{expected}' was due");
        }
    }

    private static string[] Lines(string log) =>
        log.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private async Task<Worker?> RentAsync(CancellationToken cancellationToken)
    {
        while (_idle.TryTake(out var idle))
        {
            if (idle.Alive)
            {
                return idle;
            }

            idle.Dispose();
        }

        if (_unavailable is not null)
        {
            return null;
        }

        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
        }

        Worker worker;
        try
        {
            worker = Worker.Start(_path, _limits);
        }
        catch (Win32Exception e) when (e.NativeErrorCode is 2 or 8 or 13)
        {
            // ENOENT, ENOEXEC, EACCES: there is no worker to run.
            _unavailable = $"the decode worker '{_path}' could not be started ({e.Message})";
            Volatile.Write(ref _checked, true);
            return null;
        }
        catch (Win32Exception)
        {
            // EAGAIN, EMFILE and the like pass: this request uses the command line, the next tries again.
            return null;
        }

        Interlocked.Increment(ref _started);
        try
        {
            var hello = await worker.HelloAsync(StartTimeout, cancellationToken);
            _versions = hello.Versions;
            if (!hello.Ok)
            {
                _unavailable = $"the decode worker refused to start: {hello.Message}";
            }

            Volatile.Write(ref _checked, true);
        }
        catch (TimeoutException)
        {
            // A loaded machine: not a verdict on the worker.
            worker.Dispose();
            return null;
        }
        catch (Exception e) when (e is DecodeWorkerFailedException or IOException)
        {
            // It died before saying hello (a library it links is missing, say): that will not pass.
            _unavailable = $"the decode worker did not start: {e.Message}; stderr: {worker.StderrTail}";
            Volatile.Write(ref _checked, true);
        }
        catch
        {
            worker.Dispose();
            throw;
        }

        if (_unavailable is not null)
        {
            worker.Dispose();
            return null;
        }

        return worker;
    }

    private void Return(Worker worker, bool healthy)
    {
        // A request that failed or made libav log an error may have left the process in any state (a
        // hostile file's doing): the next request, perhaps another client's, gets a fresh worker.
        bool keep = healthy && worker.Alive && worker.Requests < _limits.MaxRequests
            && (!_limits.Nvdec || worker.ResidentBytes() < _limits.MaxResidentBytes / 4 * 3);
        lock (_gate)
        {
            if (keep && !_disposed)
            {
                _idle.Add(worker);
                return;
            }
        }

        worker.Dispose();
    }

    /// <summary>One worker process and its pipes.</summary>
    private sealed class Worker : IDisposable
    {
        private readonly Process _process;
        private readonly Stream _stdin;
        private readonly PipeReader _stdout;
        private readonly StringBuilder _stderr = new();
        private long _maxResidentBytes;
        private int _disposed;
        private string? _killedFor;

        private Worker(Process process)
        {
            _process = process;
            _stdin = process.StandardInput.BaseStream;
            _stdout = new PipeReader(process.StandardOutput.BaseStream);
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is null)
                {
                    return;
                }

                lock (_stderr)
                {
                    if (_stderr.Length < 4096)
                    {
                        _stderr.AppendLine(e.Data);
                    }
                }
            };
            process.BeginErrorReadLine();
        }

        public int Requests { get; private set; }

        /// <summary>Resident memory now (VmRSS), or 0 when it cannot be read.</summary>
        public long ResidentBytes()
        {
            try
            {
                foreach (string line in File.ReadLines($"/proc/{_process.Id}/status"))
                {
                    if (line.StartsWith("VmRSS:", StringComparison.Ordinal)
                        && long.TryParse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long kib))
                    {
                        return kib * 1024;
                    }
                }
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException)
            {
                // The worker ended meanwhile.
            }

            return 0;
        }

        public bool Alive => Volatile.Read(ref _disposed) == 0 && !_process.HasExited;

        public string StderrTail
        {
            get
            {
                lock (_stderr)
                {
                    return _stderr.ToString().Trim();
                }
            }
        }

        public static Worker Start(string path, DecodeWorkerLimits limits)
        {
            var start = new ProcessStartInfo(path)
            {
                UseShellExecute = false,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                CreateNoWindow = true,
            };
            if (limits.Nvdec)
            {
                // CUDA reserves address space far beyond what it uses: NVDEC workers are bounded by
                // their resident memory instead, watched while they work.
                start.ArgumentList.Add("--nvdec");
            }
            else
            {
                start.ArgumentList.Add("--address-space");
                start.ArgumentList.Add(limits.AddressSpaceBytes.ToString(CultureInfo.InvariantCulture));
            }

            start.ArgumentList.Add("--cpu-seconds");
            start.ArgumentList.Add(limits.CpuSeconds.ToString(CultureInfo.InvariantCulture));
            start.ArgumentList.Add("--open-files");
            start.ArgumentList.Add(limits.OpenFiles.ToString(CultureInfo.InvariantCulture));
            var process = new Process { StartInfo = start };
            process.Start();
            return new Worker(process) { _maxResidentBytes = limits.Nvdec ? limits.MaxResidentBytes : 0 };
        }

        public async Task<(bool Ok, string Versions, string Message)> HelloAsync(TimeSpan timeout, CancellationToken cancellationToken)
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(timeout);
            try
            {
                var (type, payload) = await _stdout.ReadMessageAsync(deadline.Token);
                Expect(type, 'H');
                var body = new MessageReader(payload);
                uint protocol = body.UInt32();
                var versions = new uint[5];
                for (int i = 0; i < versions.Length; i++)
                {
                    versions[i] = body.UInt32();
                }

                bool ok = body.Byte() == 1;
                string message = body.String();
                body.End();
                string text = string.Create(CultureInfo.InvariantCulture,
                    $"libavformat {Version(versions[0])}, libavcodec {Version(versions[1])}, libavfilter {Version(versions[2])}, libswscale {Version(versions[3])}, libavutil {Version(versions[4])}");
                if (protocol != Protocol)
                {
                    return (false, text, $"it speaks protocol {protocol}, this reader {Protocol}");
                }

                return (ok, text, message);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"no answer within {timeout.TotalSeconds:G3} s");
            }
        }

        /// <summary>
        /// Sends one request and reads its answer with <paramref name="read"/>. Past the deadline or on
        /// cancellation the worker is killed (its state mid-request is unknown) and the caller gets
        /// <see cref="DeadlineExceededException"/> or <see cref="OperationCanceledException"/>; a dead
        /// worker or a broken answer is <see cref="DecodeWorkerFailedException"/>.
        /// </summary>
        public async Task<T> RequestAsync<T>(char type, byte[] payload, TimeSpan timeout, string operation,
            Func<PipeReader, CancellationToken, Task<T>> read, CancellationToken cancellationToken)
        {
            if (timeout <= TimeSpan.Zero)
            {
                throw new InvalidRequestException($"The timeout must be positive (got {timeout}).");
            }

            if (payload.Length > MaxMessage)
            {
                throw new InvalidRequestException($"The decode request is {payload.Length} bytes; the worker takes at most {MaxMessage}.");
            }

            Requests++;
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(timeout);
            // Disposed (and any running check awaited) before the worker can go back to the pool.
            await using var watch = _maxResidentBytes > 0 ? new Timer(_ => WatchResident(), null, 0, 100) : null;
            try
            {
                var head = new byte[5];
                head[0] = (byte)type;
                BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(1), (uint)payload.Length);
                await _stdin.WriteAsync(head, deadline.Token);
                await _stdin.WriteAsync(payload, deadline.Token);
                await _stdin.FlushAsync(deadline.Token);
                return await read(_stdout, deadline.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                Dispose();
                throw new DeadlineExceededException(operation, timeout, $"{BinaryName} killed after {timeout}");
            }
            catch (OperationCanceledException)
            {
                Dispose();
                throw;
            }
            catch (Exception e) when (e is IOException or EndOfStreamException or DecodeWorkerFailedException)
            {
                string how = _killedFor ?? await ExitDescriptionAsync();
                Dispose();
                throw new DecodeWorkerFailedException($"{e.Message} ({how}){(StderrTail.Length > 0 ? "; stderr: " + StderrTail : "")}");
            }
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
            {
                return;
            }

            try
            {
                if (!_process.HasExited)
                {
                    _process.Kill(entireProcessTree: true);
                }

                _process.WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }

            _process.Dispose();
        }

        private static string Version(uint v) => $"{v >> 16}.{(v >> 8) & 0xFF}.{v & 0xFF}";

        /// <summary>Kills an NVDEC worker whose resident memory passed its limit (its address space is not limited).</summary>
        private void WatchResident()
        {
            long resident = ResidentBytes();
            if (resident > _maxResidentBytes && Volatile.Read(ref _disposed) == 0)
            {
                _killedFor = $"worker killed: resident memory {resident} bytes over the {_maxResidentBytes}-byte limit";
                try
                {
                    _process.Kill();
                }
                catch (InvalidOperationException)
                {
                    // Gone already.
                }
            }
        }

        private async Task<string> ExitDescriptionAsync()
        {
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            try
            {
                await _process.WaitForExitAsync(wait.Token);
                int code = _process.ExitCode;
                return code > 128 ? $"worker killed by signal {code - 128}" : $"worker exited with {code}";
            }
            catch (OperationCanceledException)
            {
                return "worker still running";
            }
        }
    }

    /// <summary>Reads length-prefixed messages from the worker's stdout.</summary>
    private sealed class PipeReader(Stream stream)
    {
        private readonly byte[] _head = new byte[5];

        public async Task<(char Type, int Length)> ReadHeaderAsync(CancellationToken cancellationToken)
        {
            await ReadExactlyAsync(_head, cancellationToken);
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(_head.AsSpan(1));
            if (length > int.MaxValue)
            {
                throw new DecodeWorkerFailedException($"a {length}-byte message");
            }

            return ((char)_head[0], (int)length);
        }

        public async Task<byte[]> ReadPayloadAsync(int length, CancellationToken cancellationToken)
        {
            if (length > MaxMessage)
            {
                throw new DecodeWorkerFailedException($"a {length}-byte answer is over the {MaxMessage}-byte limit");
            }

            var payload = new byte[length];
            await ReadExactlyAsync(payload, cancellationToken);
            return payload;
        }

        public async Task<(char Type, byte[] Payload)> ReadMessageAsync(CancellationToken cancellationToken)
        {
            var (type, length) = await ReadHeaderAsync(cancellationToken);
            return (type, await ReadPayloadAsync(length, cancellationToken));
        }

        public async Task ReadExactlyAsync(Memory<byte> buffer, CancellationToken cancellationToken)
        {
            int read = await stream.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken);
            if (read < buffer.Length)
            {
                throw new EndOfStreamException("the worker's output ended mid-answer");
            }
        }
    }

    private sealed class MessageWriter
    {
        private readonly List<byte> _bytes = [];

        public MessageWriter UInt32(uint value)
        {
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(b, value);
            _bytes.AddRange(b);
            return this;
        }

        public MessageWriter Int64(long value)
        {
            Span<byte> b = stackalloc byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(b, value);
            _bytes.AddRange(b);
            return this;
        }

        public MessageWriter String(string value)
        {
            byte[] utf8 = Encoding.UTF8.GetBytes(value);
            UInt32((uint)utf8.Length);
            _bytes.AddRange(utf8);
            return this;
        }

        public byte[] ToArray() => _bytes.ToArray();
    }

    private sealed class MessageReader(byte[] payload)
    {
        private int _at;

        public byte Byte() => Take(1)[0];

        public uint UInt32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

        public int Int32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));

        public long Int64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

        public string String()
        {
            uint length = UInt32();
            if (length > payload.Length - _at)
            {
                throw new DecodeWorkerFailedException("a string runs past the end of its message");
            }

            return Encoding.UTF8.GetString(Take((int)length));
        }

        public void End()
        {
            if (_at != payload.Length)
            {
                throw new DecodeWorkerFailedException($"{payload.Length - _at} unexpected bytes at the end of a message");
            }
        }

        private ReadOnlySpan<byte> Take(int n)
        {
            if (n > payload.Length - _at)
            {
                throw new DecodeWorkerFailedException("a message ended early");
            }

            _at += n;
            return payload.AsSpan(_at - n, n);
        }
    }
}

/// <summary>Resource limits of each decode worker process.</summary>
public sealed class DecodeWorkerLimits
{
    /// <summary>Virtual memory a worker may map (RLIMIT_AS): past it allocations fail and the decode with them.</summary>
    public long AddressSpaceBytes { get; set; } = 8L << 30;

    /// <summary>
    /// CPU seconds (all its threads together) one request may use (RLIMIT_CPU, moved before each request);
    /// past it the worker is ended. A backstop behind the request's wall-clock deadline.
    /// </summary>
    public int CpuSeconds { get; set; } = 3600;

    /// <summary>Open file descriptors (RLIMIT_NOFILE).</summary>
    public int OpenFiles { get; set; } = 64;

    /// <summary>
    /// Decode h264, hevc and av1 with NVDEC (FFmpeg's CUVID decoders) where they open, else in software.
    /// NVDEC's frames are the same pictures but not the command line's bytes, so this is off by default.
    /// NVDEC workers have no address-space limit (CUDA reserves huge ranges); <see cref="MaxResidentBytes"/> bounds them.
    /// </summary>
    public bool Nvdec { get; set; }

    /// <summary>Resident memory an NVDEC worker may reach during a request before it is killed.</summary>
    public long MaxResidentBytes { get; set; } = 4L << 30;

    /// <summary>Requests a worker serves before it is replaced (bounds any slow leak in libav).</summary>
    public int MaxRequests { get; set; } = 2000;

    internal IEnumerable<string> Problems()
    {
        if (AddressSpaceBytes < 256L << 20)
        {
            yield return "DecodeWorkerLimits.AddressSpaceBytes must be at least 256 MiB";
        }

        if (MaxResidentBytes < 1L << 20)
        {
            yield return "DecodeWorkerLimits.MaxResidentBytes must be at least 1 MiB";
        }

        if (CpuSeconds < 10 || OpenFiles < 16 || MaxRequests < 1)
        {
            yield return "DecodeWorkerLimits.CpuSeconds must be at least 10, OpenFiles at least 16, MaxRequests at least 1";
        }
    }
}
