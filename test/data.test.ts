import { describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import { datasetStats, detectFormat, loadDataset } from '../lib/data/load.js';
import { tempDir } from './helpers/tmp.js';

const tmp = tempDir();
const seqOf = (ds: ReturnType<typeof loadDataset>, user: string) => Array.from(ds.sequences[ds.users.indexOf(user)], (i) => ds.items[i]);

describe('loaders', () => {
  it('reads OpenP5 user_sequence lines, gzip or not, with string ids', () => {
    const body = 'A x y z\nB y w\nC z\n';
    for (const p of [tmp.file('seq.txt', body), tmp.file('seq2.txt.gz', gzipSync(body))]) {
      const ds = loadDataset(p);
      expect(ds.format).toBe('openp5');
      expect(ds.users).toEqual(['A', 'B', 'C']);
      expect(ds.items).toEqual(['x', 'y', 'z', 'w']);
      expect(seqOf(ds, 'B')).toEqual(['y', 'w']);
    }
  });

  it('reads user-item pair lines (SASRec style) in file order', () => {
    const ds = loadDataset(tmp.file('ml.txt', '1 10\n1 11\n2 10\n1 12\n'));
    expect(ds.format).toBe('pairs');
    expect(seqOf(ds, '1')).toEqual(['10', '11', '12']);
    expect(datasetStats(ds)).toMatchObject({ users: 2, items: 3, interactions: 4 });
  });

  it('reads RecBole .inter with typed header and orders by timestamp (stable)', () => {
    const p = tmp.file('x.inter', 'user_id:token\titem_id:token\trating:float\ttimestamp:float\nu1\ta\t5\t30\nu1\tb\t4\t10\nu1\tc\t3\t30\nu2\ta\t1\t5\n');
    const ds = loadDataset(p);
    expect(ds.format).toBe('recbole');
    expect(seqOf(ds, 'u1')).toEqual(['b', 'a', 'c']);
  });

  it('reads CSV/TSV with named columns, quoting, CRLF and a BOM', () => {
    const csv = '\ufeffuserId,movieId,rating,timestamp\r\n1,"m,1",5,200\r\n1,m2,3,100\r\n2,m2,4,50\r\n';
    const ds = loadDataset(tmp.file('r.csv', csv));
    expect(ds.format).toBe('csv');
    expect(seqOf(ds, '1')).toEqual(['m2', 'm,1']);
    const tsv = 'who\twhat\nu\ti\nu\tj\n';
    const ds2 = loadDataset(tmp.file('r.tsv', tsv), { userColumn: 'who', itemColumn: 'what' });
    expect(seqOf(ds2, 'u')).toEqual(['i', 'j']);
    // Dates are accepted as timestamps.
    const ds3 = loadDataset(tmp.file('d.csv', 'user,item,time\na,x,2024-01-02\na,y,2024-01-01\n'));
    expect(seqOf(ds3, 'a')).toEqual(['y', 'x']);
  });

  it('drops and counts repeated interactions, keeping the first', () => {
    const ds = loadDataset(tmp.file('dup.txt', '1 10\n1 11\n1 10\n1 10\n2 10\n'));
    expect(ds.duplicatesDropped).toBe(2);
    expect(seqOf(ds, '1')).toEqual(['10', '11']);
  });

  it('keeps a user with one interaction and a user line with no items', () => {
    const ds = loadDataset(tmp.file('short.txt', 'a x y z\nb x\nc\n'), { format: 'openp5' });
    expect(ds.users).toEqual(['a', 'b', 'c']);
    expect(ds.sequences.map((s) => s.length)).toEqual([3, 1, 0]);
  });

  it('gives clear errors on malformed input', () => {
    expect(() => loadDataset(tmp.file('empty.txt', ''))).toThrow(/empty/);
    expect(() => loadDataset(tmp.file('blank.txt', '\n\n  \n'))).toThrow(/empty/);
    expect(() => loadDataset(tmp.file('nope.txt', 'x'), { format: 'pairs' })).toThrow(/expected 'user item' \(2 fields\)/);
    expect(() => loadDataset(tmp.file('bad.csv', 'user,item,timestamp\na,b,yesterday-ish\n'))).toThrow(/timestamp 'yesterday-ish'.*line|:2: timestamp/);
    expect(() => loadDataset(tmp.file('nocol.csv', 'foo,bar\n1,2\n'))).toThrow(/which column holds the user/);
    expect(() => loadDataset(tmp.file('short.csv', 'user,item\n1\n'))).toThrow(/:2: expected at least 2 fields/);
    expect(() => loadDataset(tmp.file('x.csv', 'user,item\n1,2\n'), { itemColumn: 'movie' })).toThrow(/no column named 'movie'/);
    expect(() => loadDataset(tmp.file('hdr.csv', 'user,item\n'))).toThrow(/no interactions/);
    expect(() => loadDataset(tmp.file('g.gz', Buffer.from([0x1f, 0x8b, 1, 2, 3])))).toThrow(/does not decompress/);
    expect(() => loadDataset(tmp.dir + '/does-not-exist.txt')).toThrow(/cannot read .*ENOENT/);
  });

  it('detects formats from names and content', () => {
    expect(detectFormat('a.inter', 'x')).toBe('recbole');
    expect(detectFormat('a.txt', '1 2\n3 4\n')).toBe('pairs');
    expect(detectFormat('a.txt', '1 2 3\n3 4\n')).toBe('openp5');
    expect(detectFormat('a.txt', 'user,item\n1,2\n')).toBe('csv');
  });
});
