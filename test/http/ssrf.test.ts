import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkAddress, checkHost, classifyAddress, hostAllowed, normalizeHost, parseAddress } from '../../src/adapters/http-ssrf.js';

const DEFAULT = { allowPrivate: true, allowLinkLocal: false };
const STRICT = { allowPrivate: false, allowLinkLocal: false };
const OPEN = { allowPrivate: true, allowLinkLocal: true };

/** Every spelling of the AWS/GCP/Azure metadata address we know a resolver or URL parser accepts. */
const METADATA_SPELLINGS = [
  '169.254.169.254',
  '2852039166', // decimal
  '0xa9fea9fe', // hex
  '0xA9FEA9FE',
  '0251.0376.0251.0376', // octal
  '0xa9.0xfe.0xa9.0xfe',
  '169.254.43518', // two-part
  '169.16689662', // 169.(254*65536+169*256+254)
  '[::ffff:169.254.169.254]', // IPv4-mapped
  '::ffff:a9fe:a9fe',
  '[::ffff:a9fe:a9fe]',
  '::a9fe:a9fe', // IPv4-compatible
  '64:ff9b::a9fe:a9fe', // NAT64
  '[0:0:0:0:0:ffff:169.254.169.254]',
  'fd00:ec2::254', // AWS IMDS IPv6
  '100.100.100.200', // Alibaba
  '169.254.170.2', // ECS
];

void describe('ssrf address rules', () => {
  for (const s of METADATA_SPELLINGS) {
    void it(`ssrf: metadata address spelled ${s} is refused`, () => {
      const r = checkHost(s, DEFAULT);
      assert.ok(r, `${s} must be refused`);
      assert.equal(r.allowKey, 'allow_link_local');
      assert.equal(checkHost(s, OPEN), undefined, 'allow_link_local allows it');
    });
  }

  void it('ssrf: link-local ranges are refused in v4 and v6', () => {
    for (const s of ['169.254.0.1', '169.254.255.255', 'fe80::1', '[fe80::1%eth0]', 'febf::1', '::ffff:169.254.1.1']) {
      const r = checkHost(s, DEFAULT);
      assert.ok(r, s);
      assert.ok(r.class === 'link_local' || r.class === 'metadata', s);
    }
  });

  void it('ssrf: metadata host names are refused without DNS', () => {
    for (const s of ['metadata.google.internal', 'METADATA.google.internal.', 'metadata', 'metadata.goog', 'instance-data']) {
      const r = checkHost(s, DEFAULT);
      assert.ok(r, s);
      assert.equal(r.class, 'metadata_name');
      assert.equal(r.allowKey, 'allow_link_local');
    }
    assert.equal(checkHost('metadata.google.internal', OPEN), undefined);
  });

  void it('ssrf: a verdict asked again (remembered) still follows the options it is asked under', () => {
    const strict = { allowPrivate: false, allowLinkLocal: false };
    for (let i = 0; i < 3; i++) {
      assert.equal(checkHost('127.0.0.1', DEFAULT), undefined);
      assert.equal(checkHost('127.0.0.1', strict)?.allowKey, 'allow_private');
      assert.equal(checkHost('169.254.169.254', DEFAULT)?.class, 'metadata');
      assert.equal(checkHost('169.254.169.254', OPEN), undefined);
    }
    const r = checkHost('10.0.0.1', strict)!;
    assert.throws(() => ((r as { message: string }).message = 'changed'), TypeError, 'a remembered refusal cannot be altered');
  });

  void it('loopback and private ranges are allowed by default', () => {
    for (const s of ['127.0.0.1', '127.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '::1', 'fc00::1', '100.64.0.1', '0.0.0.0']) {
      assert.equal(checkHost(s, DEFAULT), undefined, s);
    }
  });

  void it('ssrf: allow_private false refuses loopback, private and 0.0.0.0 in every spelling', () => {
    for (const s of [
      '127.0.0.1',
      '2130706433',
      '0x7f000001',
      '0177.0.0.1',
      '127.1',
      '10.0.0.1',
      '192.168.0.1',
      '[::1]',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      'fd12::1',
      '0.0.0.0',
      '0',
      '[::]',
    ]) {
      const r = checkHost(s, STRICT);
      assert.ok(r, `${s} must be refused`);
      assert.equal(r.allowKey, 'allow_private');
    }
  });

  void it('public addresses and names pass the literal check', () => {
    for (const s of ['8.8.8.8', '2606:4700::1111', 'example.com', 'api.internal', '1.1.1.1']) {
      assert.equal(checkHost(s, STRICT), undefined, s);
    }
  });

  void it('fd00:ec2::254 is metadata, not merely unique-local', () => {
    assert.equal(classifyAddress('fd00:ec2::254').class, 'metadata');
    assert.equal(classifyAddress('fd00:ec2::1').class, 'private');
  });

  void it('checkAddress names the host and the resolved address', () => {
    const r = checkAddress('169.254.169.254', DEFAULT, 'rebind.example');
    assert.ok(r);
    assert.match(r.message, /rebind\.example \(169\.254\.169\.254\)/);
  });

  void it('parseAddress leaves host names alone', () => {
    assert.equal(parseAddress('example.com'), undefined);
    assert.equal(parseAddress('deadbeef.example'), undefined);
    assert.equal(parseAddress('abc'), undefined);
    assert.equal(parseAddress('0x7f.1')?.toString(), '127.0.0.1');
    assert.equal(normalizeHost('[FE80::1%25eth0]'), 'fe80::1');
  });
});

void describe('http.allow_hosts matching', () => {
  void it('exact names, subdomain wildcards, addresses and CIDR', () => {
    const p = ['api.internal', '*.example.com', '10.0.0.0/8', '127.0.0.1'];
    assert.ok(hostAllowed('api.internal', p));
    assert.ok(hostAllowed('API.internal.', p));
    assert.ok(hostAllowed('a.example.com', p));
    assert.ok(hostAllowed('a.b.example.com', p));
    assert.ok(!hostAllowed('example.com', p), 'wildcard does not match the apex');
    assert.ok(!hostAllowed('badexample.com', p));
    assert.ok(!hostAllowed('example.com.evil.net', p));
    assert.ok(hostAllowed('10.9.8.7', p));
    assert.ok(hostAllowed('::ffff:10.9.8.7', p), 'mapped form matches the v4 CIDR');
    assert.ok(hostAllowed('2130706433', p), 'decimal spelling of an allowed address');
    assert.ok(!hostAllowed('11.0.0.1', p));
    assert.ok(hostAllowed('anything', ['*']));
    assert.ok(!hostAllowed('anything', []));
  });
});
