using System.Text;

namespace CvrlServe.Core.Datasets;

/// <summary>One labelled video and where it was listed (line 0 for folder-per-class data).</summary>
public sealed record LabelledVideo(string Path, string Label, int Line);

/// <summary>A labelled dataset: its videos and its classes, in a stable order.</summary>
public sealed record LabelledDataset(string Source, IReadOnlyList<LabelledVideo> Videos, IReadOnlyList<string> Classes)
{
    public int ClassIndex(string label)
    {
        for (int i = 0; i < Classes.Count; i++)
        {
            if (string.Equals(Classes[i], label, StringComparison.Ordinal))
            {
                return i;
            }
        }

        throw new KeyNotFoundException($"'{label}' is not a class of {Source}.");
    }
}

/// <summary>A problem with one line of a label file.</summary>
public sealed record DatasetProblem(string Source, int Line, string Message)
{
    public override string ToString() => Line > 0 ? $"{Source}:{Line}: {Message}" : $"{Source}: {Message}";
}

/// <summary>A label source had problems; every one is listed, none skipped.</summary>
public sealed class DatasetException(IReadOnlyList<DatasetProblem> problems)
    : Exception($"{problems.Count} problem(s) in the labelled data:\n  " + string.Join("\n  ", problems.Take(50)) + (problems.Count > 50 ? $"\n  … and {problems.Count - 50} more" : ""))
{
    public IReadOnlyList<DatasetProblem> Problems { get; } = problems;
}

/// <summary>
/// Readers for labelled video data: folder-per-class (UCF101 style), a CSV of <c>path,label</c>
/// (Kinetics style) and UCF101 split lists. Malformed rows, missing files and unknown labels are
/// reported by line number; nothing is silently dropped.
/// </summary>
public static class LabelledVideos
{
    /// <summary>By the path: a folder is folder-per-class, <c>.csv</c> a CSV, <c>.txt</c> a UCF101 split list.</summary>
    public static LabelledDataset Load(string path, string? videoRoot = null, string? classesFile = null)
    {
        if (Directory.Exists(path))
        {
            return FromFolderPerClass(path);
        }

        return Path.GetExtension(path).ToUpperInvariant() switch
        {
            ".CSV" => FromCsv(path, videoRoot, classesFile),
            ".TXT" => FromSplitList(path, videoRoot ?? Path.GetDirectoryName(Path.GetFullPath(path))!, classesFile),
            _ => throw new DatasetException([new DatasetProblem(path, 0, "not a folder, a .csv or a .txt split list")]),
        };
    }

    /// <summary><c>root/CLASS/…/video.ext</c>: the first folder level under the root is the label.</summary>
    public static LabelledDataset FromFolderPerClass(string root)
    {
        if (!Directory.Exists(root))
        {
            throw new DatasetException([new DatasetProblem(root, 0, "no such folder")]);
        }

        var classes = Directory.GetDirectories(root).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToArray();
        var videos = classes.SelectMany(label => VideoFiles.Find(Path.Combine(root, label)).Select(p => new LabelledVideo(p, label, 0))).ToArray();
        var problems = new List<DatasetProblem>();
        problems.AddRange(classes.Where(c => videos.All(v => v.Label != c)).Select(c => new DatasetProblem(root, 0, $"class folder '{c}' holds no videos")));
        problems.AddRange(Directory.GetFiles(root).Where(VideoFiles.IsVideo).Select(f => new DatasetProblem(root, 0, $"'{Path.GetFileName(f)}' is not inside a class folder")));
        if (videos.Length == 0)
        {
            problems.Add(new DatasetProblem(root, 0, "no videos in class folders"));
        }

        return problems.Count > 0 ? throw new DatasetException(problems) : new LabelledDataset(root, videos, classes);
    }

    /// <summary>
    /// A CSV of <c>path,label</c> (an optional header row naming them; quotes allowed). Relative paths are
    /// resolved against <paramref name="videoRoot"/> or the CSV's folder. With <paramref name="classesFile"/>
    /// (one class per line) a label outside it is an error; otherwise the classes are the labels seen.
    /// </summary>
    public static LabelledDataset FromCsv(string csvPath, string? videoRoot = null, string? classesFile = null)
    {
        string root = videoRoot ?? Path.GetDirectoryName(Path.GetFullPath(csvPath))!;
        var known = classesFile is null ? null : ReadClassList(classesFile);
        var problems = new List<DatasetProblem>();
        var videos = new List<LabelledVideo>();
        int line = 0;
        foreach (string text in ReadLines(csvPath, problems))
        {
            line++;
            if (string.IsNullOrWhiteSpace(text) || text.TrimStart().StartsWith('#'))
            {
                continue;
            }

            var fields = SplitCsv(text);
            if (fields is null || fields.Count != 2)
            {
                problems.Add(new DatasetProblem(csvPath, line, $"expected 'path,label', got '{Shorten(text)}'"));
                continue;
            }

            string path = fields[0].Trim();
            string label = fields[1].Trim();
            if (line == 1 && path.Equals("path", StringComparison.OrdinalIgnoreCase) && label.Equals("label", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            Add(csvPath, line, Path.Combine(root, path), label, known, videos, problems);
        }

        return Finish(csvPath, videos, known, problems);
    }

    /// <summary>
    /// A UCF101 split list: <c>Class/v_Class_g08_c01.avi 1</c> (train lists: 1-based class index from
    /// <c>classInd.txt</c>) or <c>Class/v_…avi</c> (test lists: the class is the folder). Paths are relative
    /// to <paramref name="videoRoot"/>; <paramref name="classIndFile"/> defaults to <c>classInd.txt</c> beside the list.
    /// </summary>
    public static LabelledDataset FromSplitList(string listPath, string videoRoot, string? classIndFile = null)
    {
        string classInd = classIndFile ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(listPath))!, "classInd.txt");
        var problems = new List<DatasetProblem>();
        var indexToClass = new Dictionary<int, string>();
        int line = 0;
        foreach (string text in ReadLines(classInd, problems))
        {
            line++;
            if (string.IsNullOrWhiteSpace(text))
            {
                continue;
            }

            var parts = text.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (parts.Length != 2 || !int.TryParse(parts[0], out int index) || !indexToClass.TryAdd(index, parts[1]))
            {
                problems.Add(new DatasetProblem(classInd, line, $"expected 'INDEX ClassName' with a new index, got '{Shorten(text)}'"));
            }
        }

        var known = indexToClass.OrderBy(p => p.Key).Select(p => p.Value).ToArray();
        var videos = new List<LabelledVideo>();
        line = 0;
        foreach (string text in ReadLines(listPath, problems))
        {
            line++;
            if (string.IsNullOrWhiteSpace(text))
            {
                continue;
            }

            var parts = text.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            string relative = parts[0];
            string? label = parts.Length switch
            {
                1 => relative.Split('/', '\\')[0],
                2 when int.TryParse(parts[1], out int index) => indexToClass.GetValueOrDefault(index) ?? $"#{index}",
                _ => null,
            };
            if (label is null || (parts.Length == 1 && !relative.Contains('/', StringComparison.Ordinal)))
            {
                problems.Add(new DatasetProblem(listPath, line, $"expected 'Class/video.avi [index]', got '{Shorten(text)}'"));
                continue;
            }

            Add(listPath, line, Path.Combine(videoRoot, relative), label, known, videos, problems);
        }

        return Finish(listPath, videos, known, problems);
    }

    /// <summary>One class name per line (blank lines ignored).</summary>
    public static string[] ReadClassList(string path)
    {
        var problems = new List<DatasetProblem>();
        var classes = ReadLines(path, problems).Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
        var duplicate = classes.GroupBy(c => c, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            problems.Add(new DatasetProblem(path, Array.IndexOf(classes, duplicate.Key) + 1, $"class '{duplicate.Key}' is listed twice"));
        }

        return problems.Count > 0 ? throw new DatasetException(problems) : classes;
    }

    private static void Add(string source, int line, string path, string label, IReadOnlyList<string>? known, List<LabelledVideo> videos, List<DatasetProblem> problems)
    {
        if (label.Length == 0)
        {
            problems.Add(new DatasetProblem(source, line, "empty label"));
        }
        else if (known is not null && !known.Contains(label, StringComparer.Ordinal))
        {
            problems.Add(new DatasetProblem(source, line, $"unknown label '{label}'"));
        }
        else if (!File.Exists(path))
        {
            problems.Add(new DatasetProblem(source, line, $"missing file '{path}'"));
        }
        else
        {
            videos.Add(new LabelledVideo(Path.GetFullPath(path), label, line));
        }
    }

    private static LabelledDataset Finish(string source, List<LabelledVideo> videos, IReadOnlyList<string>? known, List<DatasetProblem> problems)
    {
        if (videos.Count == 0 && problems.Count == 0)
        {
            problems.Add(new DatasetProblem(source, 0, "lists no videos"));
        }

        if (problems.Count > 0)
        {
            throw new DatasetException(problems);
        }

        var classes = known ?? videos.Select(v => v.Label).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        return new LabelledDataset(source, videos, classes);
    }

    private static IEnumerable<string> ReadLines(string path, List<DatasetProblem> problems)
    {
        if (!File.Exists(path))
        {
            problems.Add(new DatasetProblem(path, 0, "no such file"));
            return [];
        }

        return File.ReadLines(path, Encoding.UTF8);
    }

    /// <summary>Splits one CSV line; double quotes group (with "" for a quote). Null when a quote is left open.</summary>
    internal static List<string>? SplitCsv(string line)
    {
        var fields = new List<string>();
        var field = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"')
                {
                    field.Append('"');
                    i++;
                }
                else if (c == '"')
                {
                    quoted = false;
                }
                else
                {
                    field.Append(c);
                }
            }
            else if (c == '"')
            {
                quoted = true;
            }
            else if (c == ',')
            {
                fields.Add(field.ToString());
                field.Clear();
            }
            else
            {
                field.Append(c);
            }
        }

        fields.Add(field.ToString());
        return quoted ? null : fields;
    }

    private static string Shorten(string text) => text.Length > 80 ? text[..77] + "..." : text;
}
