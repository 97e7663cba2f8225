// Stands in for @kubernetes/client-node's generated model serializer
// (dist/gen/models/ObjectSerializer.js, which loads every API model) under
// dist/serializer.js. In the kube source only ListWatch reaches it, to
// serialize a label or field selector as a 'string', which the generated
// serializer returns as it is; so does this one. See ../client-node-slim.ts.
export class ObjectSerializer {
  static serialize(data: unknown, _type?: string, _format?: string): unknown {
    return data;
  }

  static deserialize(data: unknown, _type?: string, _format?: string): unknown {
    return data;
  }
}
