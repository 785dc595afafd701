// What the contracts in schemas/v1 require of each lake column (required, ranges, allowed
// values), derived from the JSON Schemas themselves: the quality checks of both targets (DuckDB
// locally, Athena and Redshift on aws) test the lake and the warehouse against these rules.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Source } from './index';
import { SCHEMA_DIR, SOURCE_FILES } from './files';

export interface ColumnRule {
  column: string;
  required: boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  /** Allowed values (`enum`, or a `const` as its single value). */
  allowed?: (string | number | boolean)[];
}

type SchemaNode = Record<string, unknown>;

interface FlatNode {
  keywords: SchemaNode;
  properties: Map<string, FlatNode>;
  required: Set<string>;
}

/** Lake column of a contract field, as the Spark jobs name it (smartcity_spark.schemas.snake_case). */
function snakeCase(name: string): string {
  return name
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase();
}

function readSchema(file: string): SchemaNode {
  return JSON.parse(readFileSync(join(SCHEMA_DIR, file), 'utf8')) as SchemaNode;
}

/** Follows `$ref` (`file#/json/pointer`) and merges `allOf`, as the Spark jobs read the contracts. */
function flatten(node: SchemaNode, file: string): FlatNode {
  const flat: FlatNode = { keywords: {}, properties: new Map(), required: new Set() };
  const merge = (other: FlatNode) => {
    Object.assign(flat.keywords, other.keywords);
    for (const [name, property] of other.properties) {
      const mine = flat.properties.get(name);
      if (mine) {
        Object.assign(mine.keywords, property.keywords);
        for (const [child, sub] of property.properties) mine.properties.set(child, sub);
        for (const r of property.required) mine.required.add(r);
      } else {
        flat.properties.set(name, property);
      }
    }
    for (const r of other.required) flat.required.add(r);
  };
  for (const [key, value] of Object.entries(node)) {
    if (key === '$ref') {
      const [target = '', pointer = ''] = String(value).split('#');
      const targetFile = target || file;
      let resolved: unknown = readSchema(targetFile);
      for (const part of pointer.split('/').filter(Boolean)) resolved = (resolved as SchemaNode)[part];
      merge(flatten(resolved as SchemaNode, targetFile));
    } else if (key === 'allOf') {
      for (const part of value as SchemaNode[]) merge(flatten(part, file));
    } else if (key === 'properties') {
      const properties = new Map<string, FlatNode>();
      for (const [name, sub] of Object.entries(value as Record<string, SchemaNode>)) properties.set(name, flatten(sub, file));
      merge({ keywords: {}, properties, required: new Set() });
    } else if (key === 'required') {
      for (const r of value as string[]) flat.required.add(r);
    } else {
      flat.keywords[key] = value;
    }
  }
  return flat;
}

/** One rule per lake column; an object (the location) contributes its children's columns. */
function columnRules(node: FlatNode, parentRequired: boolean): ColumnRule[] {
  return [...node.properties].flatMap(([name, field]): ColumnRule[] => {
    const required = parentRequired && node.required.has(name);
    if (field.keywords.type === 'object') return columnRules(field, required);
    const k = field.keywords as {
      minimum?: number;
      maximum?: number;
      exclusiveMinimum?: number;
      exclusiveMaximum?: number;
      enum?: (string | number | boolean)[];
      const?: string | number | boolean;
    };
    return [
      {
        column: snakeCase(name),
        required,
        minimum: k.minimum,
        maximum: k.maximum,
        exclusiveMinimum: k.exclusiveMinimum,
        exclusiveMaximum: k.exclusiveMaximum,
        allowed: k.const !== undefined ? [k.const] : k.enum,
      },
    ];
  });
}

let contractRules: Map<Source, ColumnRule[]> | undefined;

export function rulesOf(source: Source): ColumnRule[] {
  if (!contractRules) {
    contractRules = new Map();
    for (const file of SOURCE_FILES) {
      const flat = flatten(readSchema(file), file);
      const declared = flat.properties.get('source')?.keywords.const;
      contractRules.set(declared as Source, columnRules(flat, true));
    }
  }
  const rules = contractRules.get(source);
  if (!rules) throw new Error(`schemas/v1 has no contract for source ${source}`);
  return rules;
}

export function examples(values: unknown): string {
  const list = Array.isArray(values) ? values.map(String) : [];
  return list.length ? ` (e.g. ${list.join(', ')})` : '';
}

export function bounds(rule: ColumnRule): string {
  const low = rule.minimum !== undefined ? `[${rule.minimum}` : rule.exclusiveMinimum !== undefined ? `(${rule.exclusiveMinimum}` : '(-∞';
  const high = rule.maximum !== undefined ? `${rule.maximum}]` : rule.exclusiveMaximum !== undefined ? `${rule.exclusiveMaximum})` : '∞)';
  return `${low}, ${high}`;
}
