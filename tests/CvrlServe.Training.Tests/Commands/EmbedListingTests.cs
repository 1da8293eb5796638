using System.Security.Cryptography;
using System.Text;
using CvrlServe.Training.Commands;

namespace CvrlServe.Training.Tests.Commands;

public sealed class EmbedListingTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("cvrl-listing-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static readonly string[] Keys = Enumerable.Range(0, 50).Select(i => $"class{i % 5}/video-{i:D3}.mp4").ToArray();

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(7)]
    public void Shards_CoverTheListingOnceEach_AsTheDocumentedHashSays(int count)
    {
        var shards = Enumerable.Range(0, count).Select(i => new Shard(i, count)).ToArray();

        var owners = Keys.Select(k => shards.Where(s => s.Holds(k)).Select(s => s.Index).ToArray()).ToArray();

        Assert.All(owners, o => Assert.Single(o));
        // Independent reference: the first 8 bytes of SHA-256(UTF-8 key), big-endian, modulo N.
        for (int k = 0; k < Keys.Length; k++)
        {
            byte[] hash = SHA256.HashData(Encoding.UTF8.GetBytes(Keys[k]));
            ulong value = 0;
            for (int b = 0; b < 8; b++)
            {
                value = (value << 8) | hash[b];
            }

            Assert.Equal((int)(value % (ulong)count), owners[k][0]);
        }

        if (count > 1)
        {
            Assert.True(owners.Select(o => o[0]).Distinct().Count() > 1, "every key in one shard");
        }
    }

    [Fact]
    public void Shards_ShuffledListing_SameSplit()
    {
        var shard = new Shard(1, 3);
        var shuffled = Keys.OrderBy(k => SHA256.HashData(Encoding.UTF8.GetBytes("shuffle" + k))[0]).ThenBy(k => k.Length).ToArray();

        Assert.NotEqual(Keys, shuffled);
        Assert.Equal(Keys.Where(shard.Holds).Order(StringComparer.Ordinal), shuffled.Where(shard.Holds).Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("2/3", null, 2, 3)]
    [InlineData("0/1", null, 0, 1)]
    [InlineData("auto/4", "3", 3, 4)]
    public void Parse_ValidShard_IndexAndCount(string text, string? jobIndex, int index, int count)
    {
        var shard = Shard.Parse(text, name => name == Shard.IndexVariable ? jobIndex : null);

        Assert.Equal(new Shard(index, count), shard);
    }

    [Theory]
    [InlineData("3/3", null)]
    [InlineData("-1/3", null)]
    [InlineData("1/0", null)]
    [InlineData("1", null)]
    [InlineData("a/b", null)]
    [InlineData("1/2/3", null)]
    [InlineData("auto/4", null)]
    [InlineData("auto/4", "4")]
    [InlineData("auto/4", "x")]
    public void Parse_BadShard_UsageError(string text, string? jobIndex)
    {
        Assert.Throws<UsageException>(() => Shard.Parse(text, name => name == Shard.IndexVariable ? jobIndex : null));
    }

    [Fact]
    public void FromFolder_VideosOnlyRecursively_RelativeKeysInOrdinalOrder()
    {
        foreach (string name in new[] { "b/z.mp4", "a/y.MKV", "a/notes.txt", "B/x.webm", ".hidden/h.mp4", "c/.h.mp4" })
        {
            string path = Path.Combine(_folder, name);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, "x");
        }

        var items = EmbedListing.FromFolder(_folder);

        Assert.Equal(["B/x.webm", "a/y.MKV", "b/z.mp4"], items.Select(i => i.Key));
        Assert.All(items, i => Assert.Equal(Path.Combine(_folder, i.Key), i.Path));
    }

    [Fact]
    public void FromList_CommentsBlanksAndDuplicatesSkipped_RelativeToTheListsFolder()
    {
        string list = Path.Combine(_folder, "sub", "list.txt");
        Directory.CreateDirectory(Path.GetDirectoryName(list)!);
        File.WriteAllLines(list, ["# videos", "", "one.mp4", "  two/2.mp4  ", "one.mp4", "/abs/three.mp4"]);

        var items = EmbedListing.FromList(list);

        Assert.Equal(["one.mp4", "two/2.mp4", "/abs/three.mp4"], items.Select(i => i.Key));
        Assert.Equal(Path.Combine(_folder, "sub", "two/2.mp4"), items[1].Path);
        Assert.Equal("/abs/three.mp4", items[2].Path);
    }
}
