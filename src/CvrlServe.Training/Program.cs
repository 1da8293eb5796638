namespace CvrlServe.Training;

internal static class Program
{
    public static int Main(string[] args)
    {
        MallocTuning.Apply();
        return Cli.Run(args, Console.Out, Console.Error);
    }
}
