using System.IO.Compression;
using CvrlServe.Api.Jobs;
using CvrlServe.Core;

namespace CvrlServe.Api.Tests.Jobs;

public sealed class ArchiveExtractorTests : IDisposable
{
    private static readonly ArchiveLimits Generous = new(MaxExpandedBytes: 100_000_000, MaxEntries: 100);

    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    private string Destination => _temp.Combine("extracted");

    private async Task<IReadOnlyList<ExtractedVideo>> ExtractAsync(byte[] zip, ArchiveLimits? limits = null, CancellationToken cancellationToken = default)
    {
        string path = _temp.Combine("upload.zip");
        await File.WriteAllBytesAsync(path, zip, CancellationToken.None);
        return await ArchiveExtractor.ExtractAsync(path, Destination, limits ?? Generous, cancellationToken);
    }

    /// <summary>Asserts the refusal's reason and a telling part of its message, and that nothing was left behind.</summary>
    private async Task AssertRefusedAsync(byte[] zip, ArchiveRejection reason, string fragment, ArchiveLimits? limits = null)
    {
        var error = await Assert.ThrowsAsync<ArchiveRejectedException>(() => ExtractAsync(zip, limits));
        Assert.Equal(reason, error.Reason);
        Assert.Equal(ErrorKind.InvalidArgument, error.Kind);
        Assert.Contains(fragment, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(_temp.Path, error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Destination), "the destination should be gone after a refusal");
    }

    [Theory]
    [InlineData("")]
    [InlineData("dataset/")]
    public async Task Extract_TwoClasses_LabelsAndBytesUnderServerNames(string top)
    {
        var items = TestZips.TwoClasses(top);
        items.AddRange([new($"{top}cat/"), new($"{top}dog/", UnixMode: 0x41ED), new("__MACOSX/"), new($"__MACOSX/{top}cat/._a.mp4", [0, 5, 22]),
            new($"{top}.DS_Store", [1, 2]), new($"{top}dog/.hidden.txt", [3]), new($"{top}cat/e.mp4", TestZips.Video(5), UnixMode: 0x81A4)]);

        var videos = await ExtractAsync(TestZips.Build(items));

        Assert.Equal(["cat", "cat", "dog", "dog", "cat"], videos.Select(v => v.Label));
        Assert.Equal(["000000.mp4", "000001.mov", "000002.webm", "000003.mp4", "000004.mp4"], videos.Select(v => Path.GetFileName(v.Path)));
        Assert.Equal(videos.Select(v => v.Path).Order(), Directory.GetFiles(Destination).Order());
        int[] seeds = [1, 2, 3, 4, 5];
        for (int i = 0; i < videos.Count; i++)
        {
            Assert.Equal(Path.Combine(Destination, Path.GetFileName(videos[i].Path)), videos[i].Path);
            Assert.Equal(TestZips.Video(seeds[i]), await File.ReadAllBytesAsync(videos[i].Path));
        }

        Assert.Equal($"{top}cat/b.MOV", videos[1].OriginalName);
    }

    [Theory]
    [InlineData("../evil.mp4", "climbs out")]
    [InlineData("cat/../../evil.mp4", "climbs out")]
    [InlineData("/abs.mp4", "absolute path")]
    [InlineData("cat\\b.mp4", "backslash")]
    [InlineData("C:/evil.mp4", "drive letter")]
    [InlineData("cat//b.mp4", "empty or '.' path segment")]
    [InlineData("cat/b\u0001.mp4", "control character")]
    [InlineData("cat/b\0.mp4", "control character")]
    public async Task Extract_UnsafeName_Refused(string name, string fragment)
    {
        var items = TestZips.TwoClasses();
        items.Add(new(name, TestZips.Video(9)));

        await AssertRefusedAsync(TestZips.Build(items), ArchiveRejection.UnsafeName, fragment);
    }

    [Fact]
    public async Task Extract_SymbolicLink_Refused()
    {
        var items = TestZips.TwoClasses();
        items.Add(new("cat/link.mp4", "../../../etc/passwd"u8.ToArray(), UnixMode: unchecked((int)0xA1FF)));

        await AssertRefusedAsync(TestZips.Build(items), ArchiveRejection.NotARegularFile, "symbolic link");
    }

    [Fact]
    public async Task Extract_FifoEntry_Refused()
    {
        var items = TestZips.TwoClasses();
        items.Add(new("cat/pipe.mp4", [], UnixMode: 0x11A4));

        await AssertRefusedAsync(TestZips.Build(items), ArchiveRejection.NotARegularFile, "not a regular file");
    }

    [Fact]
    public async Task Extract_EncryptedEntry_Refused()
    {
        byte[] zip = TestZips.Build(TestZips.TwoClasses());
        TestZips.MarkEncrypted(zip, "dog/c.webm");

        await AssertRefusedAsync(zip, ArchiveRejection.Encrypted, "'dog/c.webm' is password-protected");
    }

    [Fact]
    public async Task Extract_TooManyEntries_Refused() =>
        await AssertRefusedAsync(TestZips.Build(TestZips.TwoClasses()), ArchiveRejection.TooManyEntries, "has 4 entries; at most 3", Generous with { MaxEntries = 3 });

    [Fact]
    public async Task Extract_DeclaredSizeOverLimit_Refused() =>
        await AssertRefusedAsync(TestZips.Build(TestZips.TwoClasses()), ArchiveRejection.TooLarge, "more than the 10000 bytes", Generous with { MaxExpandedBytes = 10_000 });

    [Fact]
    public async Task Extract_ZerosBomb_RefusedByRatio()
    {
        var items = TestZips.TwoClasses();
        items.Add(new("dog/bomb.mp4", new byte[50_000_000]));

        await AssertRefusedAsync(TestZips.Build(items), ArchiveRejection.CompressionRatio, "'dog/bomb.mp4' expands to more than 100 times", Generous with { MaxCompressionRatio = 100 });
    }

    [Fact]
    public async Task Extract_ZerosBomb_RefusedBySize()
    {
        var items = TestZips.TwoClasses();
        items.Add(new("dog/bomb.mp4", new byte[50_000_000]));

        await AssertRefusedAsync(TestZips.Build(items), ArchiveRejection.TooLarge, "more than the 10000000 bytes", Generous with { MaxExpandedBytes = 10_000_000, MaxCompressionRatio = 1e9 });
    }

    [Fact]
    public async Task Extract_StoredEntryDeclaringLessThanItHolds_RefusedByCountedBytes()
    {
        // A stored entry is copied for as many bytes as its compressed size says, whatever its declared size:
        // only counting the bytes written catches the lie. The first videos are written before it is reached.
        var items = TestZips.TwoClasses();
        items.Add(new("dog/liar.mp4", TestZips.Video(7, 2_000_000), Level: CompressionLevel.NoCompression));
        byte[] zip = TestZips.Build(items);
        TestZips.DeclareLength(zip, "dog/liar.mp4", 1000);

        await AssertRefusedAsync(zip, ArchiveRejection.TooLarge, "declared sizes are false", Generous with { MaxExpandedBytes = 1_000_000 });
    }

    [Fact]
    public async Task Extract_DeflatedBombDeclaringSmallSize_RefusedAsDamaged()
    {
        // ZipArchive stops a deflated entry at its declared size, so this bomb cannot expand; what is left
        // to catch is the truncated file passing as whole, which only the CRC-32 gives away.
        var items = TestZips.TwoClasses();
        items.Add(new("dog/liar.mp4", new byte[50_000_000]));
        byte[] zip = TestZips.Build(items);
        TestZips.DeclareLength(zip, "dog/liar.mp4", 1000);

        await AssertRefusedAsync(zip, ArchiveRejection.Unreadable, "'dog/liar.mp4' is damaged", Generous with { MaxCompressionRatio = 100 });
    }

    [Fact]
    public async Task Extract_StoredEntryDeclaringLessWithinLimits_RefusedAsDamaged()
    {
        var items = TestZips.TwoClasses();
        items.Add(new("dog/liar.mp4", TestZips.Video(7, 5000), Level: CompressionLevel.NoCompression));
        byte[] zip = TestZips.Build(items);
        TestZips.DeclareLength(zip, "dog/liar.mp4", 4000);

        await AssertRefusedAsync(zip, ArchiveRejection.Unreadable, "'dog/liar.mp4' is damaged");
    }

    [Fact]
    public async Task Extract_FlippedByte_RefusedAsDamaged()
    {
        var items = TestZips.TwoClasses();
        byte[] video = TestZips.Video(7, 5000);
        items.Add(new("dog/flipped.mp4", video, Level: CompressionLevel.NoCompression));
        byte[] zip = TestZips.Build(items);
        int at = zip.AsSpan().IndexOf(video.AsSpan(0, 64));
        zip[at + 100] ^= 0xFF;

        await AssertRefusedAsync(zip, ArchiveRejection.Unreadable, "'dog/flipped.mp4' is damaged");
    }

    [Theory]
    [InlineData("ca$t/a.mp4", "'ca$t' is not a valid label")]
    [InlineData(".cat/a.mp4", "'.cat' is not a valid label")]
    [InlineData(" cat/a.mp4", "' cat' is not a valid label")]
    public async Task Extract_BadLabel_Refused(string name, string fragment)
    {
        var items = TestZips.TwoClasses();
        items.Add(new(name, TestZips.Video(9)));

        await AssertRefusedAsync(TestZips.Build(items), ArchiveRejection.InvalidLabel, fragment);
    }

    [Fact]
    public async Task Extract_LabelTooLong_Refused()
    {
        var items = TestZips.TwoClasses();
        items.Add(new(new string('x', 101) + "/a.mp4", TestZips.Video(9)));

        await AssertRefusedAsync(TestZips.Build(items), ArchiveRejection.InvalidLabel, "1 to 100 ASCII letters");
    }

    [Theory]
    [InlineData("cat/notes.txt")]
    [InlineData("cat/video")]
    [InlineData("cat/a.mp4.exe")]
    public async Task Extract_DisallowedExtension_Refused(string name)
    {
        var items = TestZips.TwoClasses();
        items.Add(new(name, TestZips.Video(9)));

        await AssertRefusedAsync(TestZips.Build(items), ArchiveRejection.UnsupportedExtension, $"'{name}' is not a video");
    }

    [Fact]
    public async Task Extract_OneClassOnly_Refused() =>
        await AssertRefusedAsync(TestZips.Build(TestZips.TwoClasses("dataset/").Where(i => i.Name.Contains("/cat/", StringComparison.Ordinal))),
            ArchiveRejection.ClassCount, "it holds 1");

    [Fact]
    public async Task Extract_TooManyClasses_Refused()
    {
        var items = TestZips.TwoClasses();
        items.Add(new("eel/e.mp4", TestZips.Video(9)));

        await AssertRefusedAsync(TestZips.Build(items), ArchiveRejection.ClassCount, "between 2 and 2 class folders", Generous with { MaxClasses = 2 });
    }

    [Fact]
    public async Task Extract_EmptyClassFolder_Refused()
    {
        var items = TestZips.TwoClasses("dataset/");
        items.AddRange([new("dataset/eel/"), new("dataset/eel/.DS_Store", [1])]);

        await AssertRefusedAsync(TestZips.Build(items), ArchiveRejection.EmptyClass, "'eel' holds no video");
    }

    [Theory]
    [InlineData("top.mp4", "'top.mp4' is not inside a class folder")]
    [InlineData("a/b/c/d.mp4", "'a/b/c/d.mp4' is nested too deeply")]
    [InlineData("other/cat/x.mp4", "not in the same layout")]
    public async Task Extract_BadLayout_Refused(string name, string fragment)
    {
        var items = TestZips.TwoClasses(name.StartsWith("other/", StringComparison.Ordinal) ? "dataset/" : "");
        items.Add(new(name, TestZips.Video(9)));

        await AssertRefusedAsync(TestZips.Build(items), ArchiveRejection.Layout, fragment);
    }

    [Theory]
    [InlineData(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 })]
    [InlineData(new byte[0])]
    public async Task Extract_NotAZip_Refused(byte[] bytes) =>
        await AssertRefusedAsync(bytes, ArchiveRejection.Unreadable, "not a readable zip archive");

    [Fact]
    public async Task Extract_TruncatedZip_Refused()
    {
        byte[] zip = TestZips.Build(TestZips.TwoClasses());

        await AssertRefusedAsync(zip[..(zip.Length / 2)], ArchiveRejection.Unreadable, "not a readable zip archive");
    }

    [Fact]
    public async Task Extract_RefusedIntoExistingEmptyFolder_FolderKeptEmpty()
    {
        Directory.CreateDirectory(Destination);
        var items = TestZips.TwoClasses();
        items.Add(new("dog/bomb.mp4", new byte[5_000_000], Level: CompressionLevel.NoCompression));

        var error = await Assert.ThrowsAsync<ArchiveRejectedException>(() => ExtractAsync(TestZips.Build(items), Generous with { MaxExpandedBytes = 1_000_000 }));

        Assert.Equal(ArchiveRejection.TooLarge, error.Reason);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Destination));
    }

    [Fact]
    public async Task Extract_DestinationNotEmpty_IOExceptionAndNothingTouched()
    {
        Directory.CreateDirectory(Destination);
        string keep = Path.Combine(Destination, "keep.txt");
        await File.WriteAllTextAsync(keep, "mine");

        await Assert.ThrowsAsync<IOException>(() => ExtractAsync(TestZips.Build(TestZips.TwoClasses())));

        Assert.Equal([keep], Directory.GetFiles(Destination));
    }

    [Fact]
    public async Task Extract_Cancelled_NothingLeft()
    {
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ExtractAsync(TestZips.Build(TestZips.TwoClasses()), cancellationToken: cancelled.Token));

        Assert.False(Directory.Exists(Destination));
    }
}
