using System.Globalization;

namespace CvrlServe.Training.Commands;

/// <summary>A command's arguments: <c>--name value</c> options, <c>--flag</c> switches and positionals (all of them after <c>--</c>).</summary>
internal sealed class CommandArgs
{
    private readonly Dictionary<string, List<string>> _options = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);
    private readonly HashSet<string> _used = new(StringComparer.Ordinal);

    public CommandArgs(IEnumerable<string> args, IReadOnlySet<string> flags)
    {
        using var e = args.GetEnumerator();
        while (e.MoveNext())
        {
            string arg = e.Current;
            if (arg == "--")
            {
                // Everything after "--" is positional: a file may be named "--help" or "-i x.mp4".
                while (e.MoveNext())
                {
                    Positionals.Add(e.Current);
                }
            }
            else if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                Positionals.Add(arg);
            }
            else if (flags.Contains(arg))
            {
                _flags.Add(arg);
            }
            else if (e.MoveNext())
            {
                if (!_options.TryGetValue(arg, out var values))
                {
                    _options[arg] = values = [];
                }

                values.Add(e.Current);
            }
            else
            {
                throw new UsageException($"{arg} needs a value.");
            }
        }
    }

    public List<string> Positionals { get; } = [];

    public bool Flag(string name)
    {
        _used.Add(name);
        return _flags.Contains(name);
    }

    public string Required(string name) => Optional(name) ?? throw new UsageException($"{name} is required.");

    public string? Optional(string name)
    {
        _used.Add(name);
        return _options.GetValueOrDefault(name)?.LastOrDefault();
    }

    /// <summary>Every value of an option that may repeat (e.g. <c>--set a=1 --set b=2</c>).</summary>
    public IReadOnlyList<string> All(string name)
    {
        _used.Add(name);
        return _options.GetValueOrDefault(name) ?? [];
    }

    public int Int(string name, int fallback, int min = 1, int max = int.MaxValue)
    {
        string? text = Optional(name);
        if (text is null)
        {
            return fallback;
        }

        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) && value >= min && value <= max
            ? value
            : throw new UsageException($"{name} must be a whole number in [{min}, {max}] (got '{text}').");
    }

    public double Double(string name, double fallback, double min, double max)
    {
        string? text = Optional(name);
        if (text is null)
        {
            return fallback;
        }

        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && value >= min && value <= max
            ? value
            : throw new UsageException($"{name} must be a number in [{min}, {max}] (got '{text}').");
    }

    /// <summary>Refuses options nobody asked for: a typo must not be silently ignored.</summary>
    public void RejectUnknown()
    {
        var unknown = _options.Keys.Concat(_flags).Where(k => !_used.Contains(k)).ToArray();
        if (unknown.Length > 0)
        {
            throw new UsageException($"Unknown option(s): {string.Join(", ", unknown)}.");
        }
    }
}

/// <summary>A command line that cannot be run as given; the CLI prints the message and exits with 2.</summary>
internal sealed class UsageException(string message) : Exception(message);
