"""SEG101-MM: neural architecture search for remote-sensing segmentation on MMSegmentation."""
from setuptools import find_packages, setup


def readme():
    with open('README.md', encoding='utf-8') as f:
        return f.read()


setup(
    name='seg101_mm',
    version='0.1.0',
    description='SEG101 search space, NPENAS-NP search and zero-cost proxies for '
    'remote-sensing semantic segmentation on MMSegmentation',
    long_description=readme(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['seg101_mm', 'seg101_mm.*']),
    # the torchrun and srun scripts that launchers run the package's command lines with
    package_data={'seg101_mm.tools': ['*.sh']},
    # Both verified stacks need 3.10: the OneDL forks declare it, and so does torch 2.14 (which
    # requirements.txt pins for the upstream stack as well).
    python_requires='>=3.10',
    install_requires=[
        'numpy',
        'scipy',
        'opencv-python',
        'matplotlib',
    ],
    extras_require={
        # the upstream OpenMMLab stack (requirements.txt)
        'mm': [
            'torch',
            'torchvision',
            'mmengine>=0.10.7',
            'mmcv-lite>=2.0.0,<2.2.0',
            'mmsegmentation==1.2.2',
            'mmpretrain>=1.2.0',
            'setuptools<82',
        ],
        # VBTI's maintained forks (requirements-onedl.txt); never in one environment with 'mm'
        'onedl': [
            'torch',
            'torchvision',
            'onedl-mmengine>=0.10.12',
            'onedl-mmcv>=2.3.6',
            'onedl-mmsegmentation>=1.4.2',
            'onedl-mmpretrain>=1.3.6',
        ],
        'tests': ['pytest', 'tensorboard'],
        # SlurmLauncher(mode='sbatch') submits its batch jobs with submitit
        'slurm': ['submitit>=1.5'],
    },
    license='Apache-2.0',
    zip_safe=False,
)
