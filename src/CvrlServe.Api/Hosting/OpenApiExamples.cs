using System.Text.Json.Nodes;
using CvrlServe.Api.Resources;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace CvrlServe.Api.Hosting;

/// <summary>
/// Examples in the OpenAPI document for the JSON bodies and the main responses (Swagger UI shows them as
/// "Example Value"). Numbers are shortened: real embeddings have the model's dimension.
/// </summary>
public sealed class OpenApiExamples : ISchemaFilter
{
    private const string ModelId = "f002c16a53d23323581c61bd2ca8cf07dc65028535f55de5f512fee62b89897a";

    private static readonly Dictionary<Type, Func<JsonNode>> Examples = new()
    {
        [typeof(EmbeddingResponse)] = () => new JsonObject
        {
            ["model"] = "synthmotion-cvrl",
            ["modelId"] = ModelId,
            ["dimension"] = 128,
            ["embedding"] = new JsonArray(0.0854, 0.0858, 0.1132, -0.0412),
            ["clips"] = new JsonArray(new JsonObject { ["clip"] = 0, ["start"] = 0.0, ["end"] = 1.24, ["embedding"] = new JsonArray(0.091, 0.077, 0.120, -0.038) }),
            ["sha256"] = "d70815eb993447b71d8244fb5d395103f269a2c9e4bbb73ae8754dd7512f97d4",
            ["bytes"] = 48213,
            ["timings"] = new JsonObject { ["upload"] = 0.003, ["probe"] = 0.32, ["decode"] = 0.40, ["queue"] = 0.001, ["inference"] = 0.15, ["total"] = 1.01 },
        },
        [typeof(ClassifyResponse)] = () => new JsonObject
        {
            ["model"] = "synthmotion-cvrl",
            ["modelId"] = ModelId,
            ["probe"] = "scene-and-motion",
            ["labels"] = new JsonArray(new JsonObject { ["label"] = "ball-right", ["probability"] = 0.475 }, new JsonObject { ["label"] = "ball-rotate-cw", ["probability"] = 0.307 }),
            ["classes"] = null,
            ["timeline"] = new JsonArray(new JsonObject
            {
                ["label"] = "ball-right",
                ["start"] = 0.0,
                ["end"] = 2.34,
                ["confidence"] = 0.618,
                ["thumbnail"] = new JsonObject { ["mediaType"] = "image/jpeg", ["width"] = 160, ["height"] = 128, ["data"] = "/9j/4AAQSkZJRg…" },
            }),
            ["sha256"] = "d70815eb993447b71d8244fb5d395103f269a2c9e4bbb73ae8754dd7512f97d4",
            ["timings"] = new JsonObject { ["upload"] = 0.003, ["probe"] = 0.32, ["decode"] = 0.40, ["queue"] = 0.001, ["inference"] = 0.15, ["total"] = 1.01 },
        },
        [typeof(ClassifyEmbeddingRequest)] = () => new JsonObject
        {
            ["probe"] = "scene-and-motion",
            ["modelId"] = ModelId,
            ["embedding"] = new JsonArray(0.0854, 0.0858, 0.1132, -0.0412),
            ["topK"] = 3,
        },
        [typeof(TrainProbeRequest)] = () => new JsonObject
        {
            ["name"] = "my-actions",
            ["model"] = "synthmotion-cvrl",
            ["modelId"] = ModelId,
            ["examples"] = new JsonArray(
                new JsonObject { ["label"] = "waving", ["embedding"] = new JsonArray(0.0854, 0.0858, 0.1132, -0.0412) },
                new JsonObject { ["label"] = "clapping", ["embedding"] = new JsonArray(0.0121, 0.1410, 0.0932, 0.0213) }),
        },
    };

    public void Apply(IOpenApiSchema schema, SchemaFilterContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (schema is OpenApiSchema concrete && Examples.TryGetValue(context.Type, out var example))
        {
            concrete.Examples = [example()];
        }
    }
}
