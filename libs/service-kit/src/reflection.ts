// gRPC server reflection (grpc.reflection.v1 and v1alpha) served from binary FileDescriptorSets
// as buf wrote them, byte for byte. @grpc/reflection re-derives files through protobufjs, which
// merges files per package and drops their imports: clients then fail on the first imported type
// (google.protobuf.Timestamp), and it lists every service in the set rather than those served.
// Here each file keeps its name and imports, every answer carries the file's transitive imports,
// and list_services names exactly the services this server serves.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { fromBinary } from '@bufbuild/protobuf';
import { BinaryReader } from '@bufbuild/protobuf/wire';
import { FileDescriptorProtoSchema, type DescriptorProto, type EnumDescriptorProto } from '@bufbuild/protobuf/wkt';
import { descriptorSetPath, runtimeDescriptorSetPath } from '@hookline/proto';

interface IndexedFile {
  name: string;
  bytes: Uint8Array;
  dependencies: string[];
}

/** Splits a FileDescriptorSet into its files' raw bytes (field 1, repeated FileDescriptorProto). */
export function splitDescriptorSet(set: Uint8Array): Uint8Array[] {
  const r = new BinaryReader(set);
  const out: Uint8Array[] = [];
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (no === 1) out.push(r.bytes());
    else r.skip(wt);
  }
  return out;
}

/** Files by name, and the file declaring each fully qualified symbol. */
export class DescriptorIndex {
  private readonly files = new Map<string, IndexedFile>();
  private readonly symbols = new Map<string, string>();
  /** extendee → field number → file */
  private readonly extensions = new Map<string, Map<number, string>>();

  /** Earlier sets win when two carry a file of the same name (the well-known types). */
  constructor(sets: Uint8Array[]) {
    for (const set of sets) for (const bytes of splitDescriptorSet(set)) this.addFile(bytes);
  }

  private addFile(bytes: Uint8Array): void {
    const f = fromBinary(FileDescriptorProtoSchema, bytes);
    if (this.files.has(f.name)) return;
    this.files.set(f.name, { name: f.name, bytes, dependencies: f.dependency });
    const pkg = f.package ? `${f.package}.` : '';
    const symbol = (fqn: string) => {
      if (!this.symbols.has(fqn)) this.symbols.set(fqn, f.name);
    };
    const addEnum = (scope: string, e: EnumDescriptorProto) => {
      symbol(`${scope}${e.name}`);
      // Enum values are scoped like siblings of their enum (protobuf's C++ scoping rule).
      for (const v of e.value) symbol(`${scope}${v.name}`);
    };
    const addMessage = (scope: string, m: DescriptorProto) => {
      const fqn = `${scope}${m.name}`;
      symbol(fqn);
      for (const field of m.field) symbol(`${fqn}.${field.name}`);
      for (const o of m.oneofDecl) symbol(`${fqn}.${o.name}`);
      for (const nested of m.nestedType) addMessage(`${fqn}.`, nested);
      for (const e of m.enumType) addEnum(`${fqn}.`, e);
      for (const x of m.extension) this.addExtension(f.name, `${fqn}.${x.name}`, x.extendee, x.number, symbol);
    };
    for (const m of f.messageType) addMessage(pkg, m);
    for (const e of f.enumType) addEnum(pkg, e);
    for (const s of f.service) {
      symbol(`${pkg}${s.name}`);
      for (const m of s.method) symbol(`${pkg}${s.name}.${m.name}`);
    }
    for (const x of f.extension) this.addExtension(f.name, `${pkg}${x.name}`, x.extendee, x.number, symbol);
  }

  private addExtension(file: string, fqn: string, extendee: string, number: number, symbol: (fqn: string) => void): void {
    symbol(fqn);
    const base = extendee.replace(/^\./, '');
    let byNumber = this.extensions.get(base);
    if (!byNumber) this.extensions.set(base, (byNumber = new Map()));
    byNumber.set(number, file);
  }

  hasSymbol(fqn: string): boolean {
    return this.symbols.has(fqn);
  }

  /** The file and every file it imports, transitively (each once, the file itself first). */
  withImports(fileName: string): Uint8Array[] | undefined {
    const root = this.files.get(fileName);
    if (!root) return undefined;
    const seen = new Set<string>();
    const out: Uint8Array[] = [];
    const visit = (name: string) => {
      const f = this.files.get(name);
      if (!f || seen.has(name)) return;
      seen.add(name);
      out.push(f.bytes);
      for (const d of f.dependencies) visit(d);
    };
    visit(root.name);
    return out;
  }

  fileOfSymbol(fqn: string): string | undefined {
    return this.symbols.get(fqn);
  }

  fileOfExtension(extendee: string, number: number): string | undefined {
    return this.extensions.get(extendee)?.get(number);
  }

  extensionNumbers(extendee: string): number[] | undefined {
    const m = this.extensions.get(extendee);
    return m ? [...m.keys()].sort((a, b) => a - b) : undefined;
  }
}

/** Loads a descriptor set file. */
export const readDescriptorSet = (path: string): Uint8Array => new Uint8Array(readFileSync(path));

let contracts: DescriptorIndex | undefined;
/** proto/'s descriptors (with the well-known types) plus health, reflection and google.rpc; parsed once per process. */
export const contractDescriptors = (): DescriptorIndex =>
  (contracts ??= new DescriptorIndex([readDescriptorSet(descriptorSetPath), readDescriptorSet(runtimeDescriptorSetPath)]));

// Request and response shapes as proto-loader decodes them (camelCase, oneof name set).
interface ReflectionRequest {
  host?: string;
  messageRequest?: 'fileByFilename' | 'fileContainingSymbol' | 'fileContainingExtension' | 'allExtensionNumbersOfType' | 'listServices';
  fileByFilename?: string;
  fileContainingSymbol?: string;
  fileContainingExtension?: { containingType?: string; extensionNumber?: number };
  allExtensionNumbersOfType?: string;
  listServices?: string;
}

const LOADER_OPTIONS = { longs: String, enums: String, defaults: false, oneofs: true } as const;

/**
 * The reflection services for one server. `services` is read at each list request, so services
 * added after construction are listed too.
 */
export class ReflectionServer {
  constructor(
    private readonly index: DescriptorIndex,
    private readonly services: () => string[],
  ) {}

  addToServer(server: grpc.Server): void {
    const protoDir = require.resolve('@grpc/reflection/package.json').replace(/package\.json$/, 'build/proto');
    for (const version of ['v1', 'v1alpha']) {
      const def = loadSync(`grpc/reflection/${version}/reflection.proto`, { ...LOADER_OPTIONS, includeDirs: [protoDir] });
      const service = def[`grpc.reflection.${version}.ServerReflection`] as grpc.ServiceDefinition;
      server.addService(service, {
        ServerReflectionInfo: (stream: grpc.ServerDuplexStream<ReflectionRequest, unknown>) => {
          stream.on('data', (req: ReflectionRequest) => stream.write(this.answer(req)));
          stream.on('end', () => stream.end());
          // A client that goes away mid-stream is not an error of ours.
          stream.on('error', () => undefined);
        },
      });
    }
  }

  /** The names list_services answers: served services, health, and reflection itself. */
  listed(): string[] {
    return [...this.services(), 'grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection'];
  }

  answer(req: ReflectionRequest): Record<string, unknown> {
    const base = { validHost: req.host ?? '', originalRequest: req };
    const files = (name: string | undefined, what: string) => {
      const list = name === undefined ? undefined : this.index.withImports(name);
      return list ? { ...base, fileDescriptorResponse: { fileDescriptorProto: list.map((b) => Buffer.from(b)) } } : notFound(what);
    };
    const notFound = (what: string) => ({ ...base, errorResponse: { errorCode: grpc.status.NOT_FOUND, errorMessage: `${what} not found` } });
    switch (req.messageRequest) {
      case 'listServices':
        return { ...base, listServicesResponse: { service: this.listed().map((name) => ({ name })) } };
      case 'fileByFilename':
        return files(req.fileByFilename ?? '', `file ${JSON.stringify(req.fileByFilename ?? '')}`);
      case 'fileContainingSymbol': {
        const symbol = (req.fileContainingSymbol ?? '').replace(/^\./, '');
        return files(this.index.fileOfSymbol(symbol), `symbol ${JSON.stringify(symbol)}`);
      }
      case 'fileContainingExtension': {
        const type = (req.fileContainingExtension?.containingType ?? '').replace(/^\./, '');
        const n = req.fileContainingExtension?.extensionNumber ?? 0;
        return files(this.index.fileOfExtension(type, n), `extension ${n} of ${JSON.stringify(type)}`);
      }
      case 'allExtensionNumbersOfType': {
        const type = (req.allExtensionNumbersOfType ?? '').replace(/^\./, '');
        // A known message without extensions has an empty list, not an error.
        const numbers = this.index.extensionNumbers(type) ?? (this.index.hasSymbol(type) ? [] : undefined);
        return numbers ? { ...base, allExtensionNumbersResponse: { baseTypeName: type, extensionNumber: numbers } } : notFound(`type ${JSON.stringify(type)}`);
      }
      default:
        return { ...base, errorResponse: { errorCode: grpc.status.UNIMPLEMENTED, errorMessage: 'unknown reflection request' } };
    }
  }
}
