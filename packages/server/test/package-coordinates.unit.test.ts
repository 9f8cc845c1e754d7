import { describe, expect, it } from 'vitest';
import { mavenPathCoordinates, npmPathCoordinates, pypiPathCoordinates } from '../src/formats/package-coordinates.ts';

describe('package coordinates of repository paths (for curation rules)', () => {
  it('names the npm package and version of a tarball path, scoped or not', () => {
    expect(npmPathCoordinates('lodash/-/lodash-4.17.21.tgz')).toEqual({ name: 'lodash', version: '4.17.21' });
    expect(npmPathCoordinates('@scope/pkg/-/pkg-1.0.0-beta.1.tgz')).toEqual({ name: '@scope/pkg', version: '1.0.0-beta.1' });
    expect(npmPathCoordinates('lodash')).toBeUndefined();
    expect(npmPathCoordinates('lodash/-/lodash-4.17.21.tgz.sha1')).toBeUndefined();
  });

  it('names the PyPI project and version of a distribution path', () => {
    expect(pypiPathCoordinates('requests/2.31.0/requests-2.31.0-py3-none-any.whl')).toEqual({ name: 'requests', version: '2.31.0' });
    expect(pypiPathCoordinates('requests/')).toBeUndefined();
  });

  it('names groupId:artifactId and the version of a Maven layout path', () => {
    expect(mavenPathCoordinates('org/apache/commons/commons-lang3/3.14.0/commons-lang3-3.14.0.jar')).toEqual({ name: 'org.apache.commons:commons-lang3', version: '3.14.0' });
    expect(mavenPathCoordinates('org/apache/commons/commons-lang3/maven-metadata.xml')).toBeUndefined();
  });
});
